"""Errors raised when a contract is broken: they always say where and why."""


class SchemaError(ValueError):
    """A document or record does not satisfy its schema."""


class SourceLayoutError(ValueError):
    """A dataset is not in the published layout a reader expects (names the file and line)."""

    def __init__(self, path: str, message: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}")
        self.path, self.line = path, line


class ChecksumError(IOError):
    """An archive's bytes do not match the checksum its publisher lists."""


def describe_validation_error(err) -> str:
    """One line per problem of a pydantic ValidationError: 'path.to.field: message'."""
    return "\n".join(
        f"  {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()
    )
