"""Errors that carry a one-line cause for the user instead of a traceback."""


class MedsynthError(Exception):
    """A problem the user can fix (bad config, missing data or weights). Printed as one line."""


class RejectedInput(Exception):
    """One input file cannot be used; the caller records it in a rejects table with this reason and goes on."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
