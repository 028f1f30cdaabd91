"""The project's error hierarchy, in one module.

Every message says what to do next. The CLI turns these into clean messages and exit codes;
library code never catches-and-prints them.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Base class of every error the project raises on purpose."""

    exit_code = 1


class InvalidResourceError(AssistantError):
    """A corpus file cannot be read or parsed into a resource."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class CorpusNotFoundError(AssistantError):
    """The corpus folder does not exist or holds no readable file."""

    exit_code = 2


class IndexNotFoundError(AssistantError):
    """No index exists where one was expected."""

    exit_code = 3


class IndexCorruptError(AssistantError):
    """The index exists but a file of it is missing, truncated or inconsistent."""

    exit_code = 3


class IndexNotWritableError(AssistantError):
    """The index folder cannot be written (read-only, a file, no space)."""

    exit_code = 3


class ModelMismatchError(AssistantError):
    """The index was built with another embedding model, dimension or chunking."""

    exit_code = 3


class ModelLoadError(AssistantError):
    """The embedding model cannot be loaded or rebuilt."""

    exit_code = 4


class BuildLockedError(AssistantError):
    """Another build holds the index lock."""

    exit_code = 5


class BuildRefusedError(AssistantError):
    """A build would remove most of the base, or leave it empty: refused unless allowed."""

    exit_code = 7


class InvalidQuestionError(AssistantError):
    """The question is empty or unusable."""

    exit_code = 2


class ConfigurationError(AssistantError):
    """A setting or option has an invalid value."""

    exit_code = 2
