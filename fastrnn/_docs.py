"""Docstrings written once and shared: a placeholder in several docstrings filled with one text."""


def fill(obj, placeholder, text):
    """Replace ``placeholder`` by ``text`` in ``obj.__doc__``; nothing where docstrings are stripped
    (``python -OO`` leaves them None)."""
    if obj.__doc__:
        obj.__doc__ = obj.__doc__.replace(placeholder, text)
