"""`StackError`: the local stack cannot start or run as asked; its message says what to do."""


class StackError(RuntimeError):
    pass
