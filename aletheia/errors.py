"""One exception hierarchy, rooted at :class:`AletheiaError`.

Every error says what went wrong and what to do about it, so a user never
has to read a traceback to know the next step. Library code raises these;
the CLI turns them into a one-line message and a non-zero exit code.
"""

from __future__ import annotations


class AletheiaError(Exception):
    """Base class of every error aletheia raises on purpose.

    ``hint`` tells the user what to do next; it is appended to the message.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


class ConfigError(AletheiaError):
    """A setting is missing, malformed or contradicts another one."""

    exit_code = 2


class ValidationError(AletheiaError):
    """A name, path or value supplied by the user is not acceptable."""

    exit_code = 2


class CredentialsError(AletheiaError):
    """No usable Google Cloud credentials were found for a cloud target."""

    exit_code = 3


class BackendUnavailableError(AletheiaError):
    """Firestore, Cloud Storage or an emulator could not be reached."""

    exit_code = 4


class NotFoundError(AletheiaError):
    """A project, experiment, run, dataset or file does not exist."""

    exit_code = 5


class ConflictError(AletheiaError):
    """The operation collides with existing state (e.g. a document already exists)."""

    exit_code = 6


class LocalStackError(AletheiaError):
    """A part of the local emulator stack failed to start, stop or answer.

    ``part`` names the component (``firestore``, ``storage``, ``pubsub``,
    ``function``, ``bridge``) so the user knows where to look.
    """

    exit_code = 7

    def __init__(self, part: str, message: str, hint: str | None = None) -> None:
        self.part = part
        super().__init__(f"[{part}] {message}", hint)


class GitPolicyError(AletheiaError):
    """The git working tree violates the configured policy (strict mode)."""

    exit_code = 8


class IntegrityError(AletheiaError):
    """Bytes on disk or in the bucket do not match their recorded hash."""

    exit_code = 9


class AccessDeniedError(AletheiaError):
    """Firestore's rules refused the signed-in user (not a member, or the role is too low)."""

    exit_code = 10


class RejectedError(AletheiaError):
    """Firestore refused a request for good (too large, invalid, not allowed): no retry helps."""

    exit_code = 11


class EnvironmentBuildError(AletheiaError):
    """Building a run's environment failed (venv creation or a package install)."""

    exit_code = 12


class NotebookFailedError(AletheiaError):
    """A notebook executed by ``aletheia run`` stopped at a cell that raised."""

    exit_code = 13
