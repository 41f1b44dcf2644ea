"""The errors a command can end in; codes are the wire protocol's."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "invalid"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    CLOSED = "closed"  # the meeting's phase forbids it
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"


HTTP_STATUS = {
    ErrorCode.INVALID: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.CLOSED: 409,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
}


class DomainError(Exception):
    """A command that cannot be done; nothing was changed."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID, message)


def forbidden(message: str) -> DomainError:
    return DomainError(ErrorCode.FORBIDDEN, message)


def not_found(message: str) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, message)


def conflict(message: str) -> DomainError:
    return DomainError(ErrorCode.CONFLICT, message)


def closed(message: str) -> DomainError:
    return DomainError(ErrorCode.CLOSED, message)
