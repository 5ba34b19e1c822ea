"""What the kernels run on: thread dispatch (``dispatch``), control of the BLAS's threads
(``blas``), per-thread scratch arrays (``workspace``) and the memory budget (``memory``)."""
from . import blas, dispatch, memory, workspace

__all__ = ["blas", "dispatch", "memory", "workspace"]
