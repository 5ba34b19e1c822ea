"""What the kernels run on: the threading layer (``layer``), thread dispatch (``dispatch``),
control of the BLAS libraries' threads (``blas``), per-thread scratch arrays (``workspace``), the
memory budget (``memory``) and the word on compilation (``compilation``)."""
from . import blas, compilation, dispatch, layer, memory, workspace

__all__ = ["blas", "compilation", "dispatch", "layer", "memory", "workspace"]
