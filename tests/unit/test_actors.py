"""The consent record's actor, read from the request in one place."""

from __future__ import annotations

from flask import Flask

from newsletter.web.actors import USER_AGENT_MAX, request_actor


def test_the_actor_is_the_clients_address_and_user_agent():
    app = Flask(__name__)
    with app.test_request_context("/", headers={"User-Agent": "TestBrowser/1.0"},
                                  environ_base={"REMOTE_ADDR": "203.0.113.7"}):
        actor = request_actor("form")
    assert (actor.source, actor.ip, actor.user_agent) == ("form", "203.0.113.7",
                                                           "TestBrowser/1.0")


def test_a_long_user_agent_is_cut_and_an_empty_one_is_none():
    app = Flask(__name__)
    with app.test_request_context("/", headers={"User-Agent": "x" * 1000}):
        assert request_actor("api").user_agent == "x" * USER_AGENT_MAX
    with app.test_request_context("/", headers={"User-Agent": ""}):
        assert request_actor("api").user_agent is None
