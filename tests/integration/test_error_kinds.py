"""One error base (issue 27): a domain error that no view caught answers with its kind's
status — 400 invalid, 409 conflict, 404 not found, 503 unavailable — in the one JSON shape
for the API and hooks, and on a page elsewhere; never a 500."""

from __future__ import annotations

import pytest

from newsletter.errors import Conflict, Invalid, NewsletterError, NotFound, Unavailable
from newsletter.validation import FieldError, InvalidInput

KINDS = [(Invalid("bad input"), 400), (Conflict("not a draft any more"), 409),
         (NotFound("no such edition"), 404), (Unavailable("the relay is down"), 503)]


@pytest.fixture
def raising_app(app):
    def boom(kind: int):
        raise (KINDS[kind][0] if kind < len(KINDS)
               else InvalidInput([FieldError("subject", "is empty")]))

    app.add_url_rule("/api/v1/test-boom/<int:kind>", "api_boom", boom)
    app.add_url_rule("/test-boom/<int:kind>", "page_boom", boom)
    return app


@pytest.mark.parametrize("index", range(len(KINDS)))
def test_each_kind_answers_its_status_in_one_json_shape(raising_app, index):
    error, status = KINDS[index]
    answer = raising_app.test_client().get(f"/api/v1/test-boom/{index}")
    assert answer.status_code == status
    body = answer.get_json()
    assert set(body) == {"error", "message"} and body["message"] == str(error)
    page = raising_app.test_client().get(f"/test-boom/{index}")
    assert page.status_code == status and str(error) in page.get_data(as_text=True)


def test_invalid_input_lists_its_problems(raising_app):
    answer = raising_app.test_client().get(f"/api/v1/test-boom/{len(KINDS)}")
    assert answer.status_code == 400
    assert answer.get_json()["problems"] == [{"field": "subject", "message": "is empty"}]


def test_every_domain_error_class_has_a_kind():
    """Every exception class the domain raises derives from the one base."""
    import importlib
    import inspect
    import pkgutil

    import newsletter

    missing = []
    for module_info in pkgutil.walk_packages(newsletter.__path__, "newsletter."):
        if module_info.name.startswith(("newsletter.web", "newsletter.cli",
                                        "newsletter.scheduler")):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, Exception)
                    and value.__module__ == module.__name__ and not name.startswith("_")
                    and not issubclass(value, NewsletterError)):
                missing.append(f"{module.__name__}.{name}")
    assert missing == []
