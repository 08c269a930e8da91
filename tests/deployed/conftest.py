"""The deployed lane: the product as deployed (gunicorn, workers, PostgreSQL, Redis) and a
real MTA (a private Postfix, ``tests.support.postfix``). Run by ``make test-deployed``;
``make test`` leaves this folder out. Without Postfix or root the tests fail and say why
(never a silent pass)."""

from tests.support.postfix import postfix_server  # noqa: F401 - fixture
