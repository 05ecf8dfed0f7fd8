"""The updater's error classes. Every message is one line a technician can act on."""

from __future__ import annotations


class FirmwareError(Exception):
    """Base class: str() is a complete, one-line reason."""


class BundleError(FirmwareError):
    """The bundle file is malformed (header, manifest or signature table)."""


class TrustError(FirmwareError):
    """The bundle is not signed by a trusted key, or a key file is unusable."""


class PolicyError(FirmwareError):
    """The bundle is authentic but may not be installed here (hardware, version, size)."""


class PayloadError(FirmwareError):
    """The payload does not match what the manifest promises or holds a refused member."""


class SourceError(FirmwareError):
    """The bundle could not be read (file or network); a retry may succeed."""


class SlotError(FirmwareError):
    """The slot backend cannot do what was asked (layout, device, boot configuration)."""


class BusyError(FirmwareError):
    """Another update is in a state that must be settled first (commit or roll back)."""
