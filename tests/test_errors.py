"""One line for the errors whose message is the whole story; a traceback for everything else."""

from __future__ import annotations

import pytest

from fashion_search.config import ConfigError
from fashion_search.data.download import DownloadError
from fashion_search.data.pairs import MissingInputError
from fashion_search.errors import DataError, UserError
from fashion_search.models.clip import ModelNotFoundError
from fashion_search.search.engine import QueryError
from fashion_search.stage import run
from fashion_search.tracking import TrackingUnavailableError

USER_ERRORS = (ConfigError, DataError, DownloadError, MissingInputError, ModelNotFoundError, QueryError,
               TrackingUnavailableError)


@pytest.mark.parametrize("error", USER_ERRORS)
def test_a_user_error_is_one_line_and_exit_status_1(error: type[UserError], capsys: pytest.CaptureFixture) -> None:
    def main() -> None:
        raise error("data.local_path does not exist; set it to the folder you downloaded")

    with pytest.raises(SystemExit) as exit_info:
        run(main)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: data.local_path does not exist; set it to the folder you downloaded\n"


@pytest.mark.parametrize("error", [ValueError, RuntimeError, TypeError, KeyError])
def test_any_other_exception_is_a_bug_and_keeps_its_traceback(error: type[Exception]) -> None:
    def main() -> None:
        raise error("shape mismatch in a matmul")

    with pytest.raises(error):
        run(main)


def test_user_errors_keep_the_builtin_base_callers_catch() -> None:
    assert issubclass(ConfigError, ValueError) and issubclass(DataError, ValueError)
    assert issubclass(MissingInputError, FileNotFoundError) and issubclass(QueryError, ValueError)
    assert all(issubclass(error, UserError) for error in USER_ERRORS)
