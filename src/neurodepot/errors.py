"""The domain's exception types.

Domain code raises these with a message a user can act on; they carry no HTTP status or exit
code. Each edge (API, CLI, DICOM listener) translates them in one place.
"""


class NeurodepotError(Exception):
    """Base of every error neurodepot reports to a user rather than crashing on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(NeurodepotError):
    """The thing asked for does not exist (or the caller may not know it does)."""


class Conflict(NeurodepotError):
    """The request clashes with what is stored: a duplicate label, a non-empty parent."""


class Invalid(NeurodepotError):
    """The input is malformed: a bad label, a path outside a resource, a bad setting."""


class InvalidToken(Invalid):
    """A signed link or token that is malformed, forged, meant for something else, or used up."""


class ExpiredToken(InvalidToken):
    """A signed link or token that was genuine but is past its expiry."""


class Denied(NeurodepotError):
    """The caller may not do this."""


class SignInFailed(Denied):
    """A sign-in that did not succeed; one message whatever the reason (HTTP 401)."""


class Throttled(Denied):
    """Too many failed attempts from this address: wait before trying again (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(NeurodepotError):
    """A service the depot needs cannot be reached (database, storage), or the depot is unusable."""


class NotADepot(Unavailable):
    """The folder given as a depot has no `neurodepot.toml`."""


class MigrationRequired(Unavailable):
    """The depot's schema is older than this code and migrating was not allowed."""
