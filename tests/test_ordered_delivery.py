"""Messages of one conversation leave this process in seq order, whatever order commits finish."""

from __future__ import annotations

from app.realtime import OrderedDelivery


def test_a_later_seq_waits_for_the_earlier_one():
    order = OrderedDelivery()
    sent = []
    order.begin(1, 7)
    order.begin(1, 8)
    order.complete(1, 8, lambda: sent.append(8))
    assert sent == []
    order.complete(1, 7, lambda: sent.append(7))
    assert sent == [7, 8]


def test_a_rolled_back_seq_releases_the_next():
    order = OrderedDelivery()
    sent = []
    order.begin(1, 3)
    order.begin(1, 4)
    order.complete(1, 4, lambda: sent.append(4))
    order.abandon(1, 3)
    assert sent == [4]


def test_conversations_do_not_wait_for_each_other():
    order = OrderedDelivery()
    sent = []
    order.begin(1, 5)
    order.begin(2, 9)
    order.complete(2, 9, lambda: sent.append("b9"))
    assert sent == ["b9"]


def test_an_emit_that_triggers_another_completion_keeps_the_order():
    order = OrderedDelivery()
    sent = []
    order.begin(1, 1)
    order.begin(1, 2)

    def first():
        sent.append(1)
        order.complete(1, 2, lambda: sent.append(2))  # arrives while 1 is being emitted

    order.complete(1, 1, first)
    assert sent == [1, 2]
