"""Business refusals. Each has a stable `type` that travels through Temporal as an ApplicationError
type, and that the API maps to one HTTP status in one place."""


class LicensingError(Exception):
    """A request the licence rules refuse; `message` is written for the person who asked."""

    type: str = "LicensingError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OrderNotRequested(LicensingError):
    type = "OrderNotRequested"


class InsufficientStock(LicensingError):
    type = "InsufficientStock"


class NotFound(LicensingError):
    type = "NotFound"


class TooLarge(LicensingError):
    """An upload larger than its cap (answered 413)."""

    type = "TooLarge"


class InsufficientLicences(LicensingError):
    type = "InsufficientLicences"


class Conflict(LicensingError):
    type = "Conflict"


class InvalidInput(LicensingError):
    """Well-formed input that breaks a limit or a rule about its shape (answered 422)."""

    type = "InvalidInput"
