"""Label and field selectors, table-tested against the apimachinery parser's behaviour
(what `kubectl -l` and `--field-selector` send, and what the API server accepts)."""

from __future__ import annotations

import pytest

from tracer.metadata.selectors import FieldSelector, LabelSelector, Op, Requirement, SelectorError
from tracer.util.errors import UsageError

WEB = {"app": "web", "tier": "frontend", "env": "prod", "replicas": "3"}
DB = {"app": "db", "tier": "backend", "env": "staging"}
EMPTY_APP = {"app": ""}
NONE: dict[str, str] = {}

# (selector, labels, matches)
MATCHES = [
    ("", WEB, True),
    ("", NONE, True),
    ("app", WEB, True),
    ("app", EMPTY_APP, True),
    ("app", NONE, False),
    ("!app", NONE, True),
    ("!app", WEB, False),
    ("app=web", WEB, True),
    ("app=web", DB, False),
    ("app==web", WEB, True),
    ("  app  =  web  ", WEB, True),
    ("app!=web", DB, True),
    ("app!=web", WEB, False),
    ("app!=web", NONE, True),  # absent counts as "not equal"
    ("env in (prod, staging)", WEB, True),
    ("env in (prod,staging)", DB, True),
    ("env in (dev)", WEB, False),
    ("env in (prod)", NONE, False),
    ("env notin (prod)", DB, True),
    ("env notin (prod)", WEB, False),
    ("env notin (prod)", NONE, True),  # absent is "not in"
    ("app=web,tier=frontend", WEB, True),
    ("app=web,tier!=frontend", WEB, False),
    ("app=web, env in (prod), !missing", WEB, True),
    ("app=", EMPTY_APP, True),  # empty value
    ("app=", WEB, False),
    ("app in ()", EMPTY_APP, True),  # "()" is the set holding ""
    ("app in ()", WEB, False),
    ("app in (web,)", EMPTY_APP, True),
    ("replicas>2", WEB, True),
    ("replicas>3", WEB, False),
    ("replicas<4", WEB, True),
    ("replicas>2", DB, False),  # absent
    ("app>2", WEB, False),  # not an integer label value
    ("replicas>-1", WEB, True),
    ("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"}, True),
    ("kubernetes.io/service-name=web", {"kubernetes.io/service-name": "db"}, False),
    ("in=x", {"in": "x"}, True),  # keywords are identifiers in key position
    ("a in (in,notin)", {"a": "notin"}, True),
    ("app=Web_1.x-y", {"app": "Web_1.x-y"}, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHES)
def test_matches_like_kubectl(text: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is expected


INVALID = [
    "app=web,",  # trailing comma
    ",app=web",
    "app=web,,tier=x",
    "app in",
    "app in (a",
    "app in a",
    "app in (a b)",
    "app in (a))",
    "app notin",
    "!",
    "!app=web",  # "!" takes a key only
    "!=web",
    "=web",
    "app=web=x",
    "app=a b",
    "a b",
    "app=(x)",
    "app=web)",
    "app > x",  # Gt/Lt need an integer
    "app>",
    "app<1.5",
    "-app=x",  # key must start alphanumeric
    "app-=x",
    "Bad.Prefix/app=x",  # prefix must be a lowercase DNS subdomain
    "/app=x",
    "a/b/c=x",
    "example.com/=x",
    "a" * 64 + "=x",  # name part longer than 63
    "app=" + "v" * 64,  # value longer than 63
    "app=-web",  # value must start alphanumeric
    "app=web-",
    "app in (ok,-bad)",
    "app=we$b",
]


@pytest.mark.parametrize("text", INVALID)
def test_rejects_what_the_api_server_rejects(text: str) -> None:
    with pytest.raises(SelectorError):
        LabelSelector.parse(text)


def test_limits_are_inclusive() -> None:
    LabelSelector.parse("a" * 63 + "=" + "v" * 63)
    LabelSelector.parse("p" * 253 + "/k=v")
    with pytest.raises(SelectorError):
        LabelSelector.parse("p" * 254 + "/k=v")


def test_selector_error_is_a_usage_error() -> None:
    # The CLI turns it into exit status 2 for `nodetrace -l 'bad selector'`.
    assert issubclass(SelectorError, UsageError)


def test_canonical_string_sorts_by_key_and_values() -> None:
    selector = LabelSelector.parse("tier!=db, app in (web,api), !old, env, n>3")
    assert str(selector) == "app in (api,web),env,n>3,!old,tier!=db"
    assert LabelSelector.parse(str(selector)) == selector


def test_requirement_validates_when_built_directly() -> None:
    assert Requirement("app", Op.IN, ("a", "b")).matches({"app": "b"})
    with pytest.raises(SelectorError):
        Requirement("app", Op.EQUALS, ("a", "b"))
    with pytest.raises(SelectorError):
        Requirement("app", Op.EXISTS, ("a",))
    with pytest.raises(SelectorError):
        Requirement("app", Op.IN, ())


def test_matches_none_labels() -> None:
    assert LabelSelector.parse("!app").matches(None)
    assert not LabelSelector.parse("app").matches(None)


POD = {"spec.nodeName": "node1", "metadata.name": "web-1", "metadata.namespace": "default",
       "status.phase": "Running"}

FIELD_MATCHES = [
    ("", True),
    ("spec.nodeName=node1", True),
    ("spec.nodeName==node1", True),
    ("spec.nodeName!=node1", False),
    ("spec.nodeName=node2", False),
    ("spec.nodeName=node1,metadata.name=web-1", True),
    ("spec.nodeName=node1,metadata.name!=web-1", False),
    ("spec.nodeName=node1,", True),  # empty terms are skipped
    ("status.phase!=Pending", True),
]


@pytest.mark.parametrize(("text", "expected"), FIELD_MATCHES)
def test_field_selector_matches(text: str, expected: bool) -> None:
    assert FieldSelector.parse(text).matches(lambda path: POD.get(path, "")) is expected


def test_field_selector_empty_value_selects_unset_fields() -> None:
    assert FieldSelector.parse("spec.nodeName=").matches(lambda path: "")


def test_field_selector_escapes() -> None:
    selector = FieldSelector.parse(r"metadata.name=a\,b\=c\\d")
    assert selector.requirements[0].value == "a,b=c\\d"
    assert FieldSelector.parse(str(selector)) == selector


@pytest.mark.parametrize("text", ["spec.nodeName", "a=b\\", "a=b=c", "a=x,y", "a=\\q"])
def test_field_selector_rejects(text: str) -> None:
    with pytest.raises(SelectorError):
        FieldSelector.parse(text)


def test_field_selector_leftmost_operator_wins() -> None:
    # fields.splitTerm: "a!=b" is a negation, "a=!b" compares with "!b".
    assert FieldSelector.parse("a!=b").requirements[0].negated
    assert FieldSelector.parse("a=!b").requirements[0].value == "!b"
