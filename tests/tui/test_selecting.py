"""`l` and `N` build the selection kubectl's -l and -n would, and a replay's view of it."""

from __future__ import annotations

import pytest

from tracer.metadata.selectors import LabelSelector, SelectorError
from tracer.session.pod_scope import Selection
from tui.selection_edit import labels_text, namespace_text, view_scope, with_labels, with_namespace

WEB = LabelSelector.parse("app=web")
LABELS = {"default/web-a": {"app": "web"}, "shop/web-b": {"app": "web"},
          "default/client": {"app": "client"}}


def test_labels_without_a_namespace_mean_default() -> None:
    assert with_labels(None, "app=web") == Selection(labels=WEB, namespace="default")
    assert with_labels(None, "  ") is None
    shop = Selection(namespace="shop")
    assert with_labels(shop, "app=web") == Selection(labels=WEB, namespace="shop")
    assert with_labels(Selection(labels=WEB, namespace=None), "") is None
    # the live session's default is kubectl's: the kubeconfig context's namespace
    assert with_labels(None, "app=web", "kube-system") == Selection(labels=WEB,
                                                                    namespace="kube-system")
    assert with_labels(shop, "app=web", "kube-system").namespace == "shop"


def test_the_parsers_errors_come_through() -> None:
    with pytest.raises(SelectorError, match="invalid label key"):
        with_labels(None, "-app=web")
    with pytest.raises(SelectorError, match="invalid namespace"):
        with_namespace(None, "Shop")


def test_namespace_switch() -> None:
    sel = Selection(labels=WEB, namespace="default")
    assert with_namespace(sel, "shop") == Selection(labels=WEB, namespace="shop")
    assert with_namespace(sel, "-A") == Selection(labels=WEB, namespace=None)
    assert with_namespace(Selection(namespace="shop"), "") is None
    assert with_namespace(None, "shop") == Selection(namespace="shop")


def test_prefill_texts() -> None:
    assert (labels_text(None), namespace_text(None)) == ("", "-A")
    sel = Selection(labels=LabelSelector.parse("app in (b,a),!canary"), namespace="shop")
    assert (labels_text(sel), namespace_text(sel)) == ("app in (a,b),!canary", "shop")
    assert with_labels(None, labels_text(sel)) == Selection(labels=sel.labels)


def test_view_scope() -> None:
    assert view_scope(None, LABELS) == (None, None)
    assert view_scope(Selection(labels=WEB, namespace=None), LABELS) == (
        frozenset({"default/web-a", "shop/web-b"}), None)
    assert view_scope(Selection(labels=WEB), LABELS) == (
        frozenset({"default/web-a", "shop/web-b"}), "default")
    assert view_scope(Selection(namespace="shop"), {}) == (None, "shop")
    with pytest.raises(SelectorError, match="no pod labels"):
        view_scope(Selection(labels=WEB), {})
