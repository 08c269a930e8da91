"""The shape of a validation problem, shared by every domain that checks input."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidInput(ValueError):
    """Input has problems; ``errors`` lists every one of them, each naming its field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(error) for error in errors))

    def for_field(self, name: str) -> str | None:
        return next((e.message for e in self.errors if e.field == name), None)


def single_line(name: str, value: object, limit: int, errors: list[FieldError]) -> str | None:
    """``value`` stripped, if it is one line of text of at most ``limit`` characters;
    otherwise None, with the reason added to ``errors``."""
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be text"))
        return None
    if len(value) > limit:
        errors.append(FieldError(name, f"is longer than {limit} characters"))
        return None
    if any(ch in value for ch in "\r\n\0"):
        errors.append(FieldError(name, "must be a single line"))
        return None
    return value.strip()
