"""The two ways a request to a cloud service can fail, as the rest of the code sees them."""


class TransientError(Exception):
    """Worth trying again: network, timeout, 5xx, an object that changed while being read."""


class StorageError(Exception):
    """Retrying will not help (access denied, bad request): report it and stop."""


class NotFound(StorageError):
    """The object (or its bucket) does not exist."""


class PreconditionFailed(StorageError):
    """A conditional request found the object changed (If-Match failed)."""
