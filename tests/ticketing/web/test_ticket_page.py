"""The ticket page: transcript, masked customer card, history, deadlines, htmx partials,
reply delivery states and the customer's photos (rules §REC-1, §SEC-4, §SEC-5, §SLA-1)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.ticketing.desk_setup import NOW
from tests.ticketing.web.conftest import sign_in
from tests.ticketing.web.test_ticket_actions import PHONE, World, build_world, outbox_rows, post
from ticketing.conversations import outbox
from ticketing.core.models import Agent, SlaTimer, TimerKind
from ticketing.desk import tickets

PHOTO = b"\xff\xd8\xff\xe0 a tiny jpeg \xff\xd9"
HTMX = {"HX-Request": "true"}


@pytest.fixture
def world(session_factory, people) -> World:
    return build_world(session_factory, people)


@pytest.fixture
def photos(app, tmp_path):
    """The attachments directory the gateway writes and the desk reads."""
    folder = tmp_path / "attachments"
    folder.mkdir()
    app.state.desk.extras["attachments_dir"] = folder
    return folder


def claimed(app, people, world):
    li = sign_in(app, people.desk.l1)
    assert post(li, world.ticket_id, "claim").status_code == 200
    return li


def test_the_page_shows_transcript_masked_contact_history_and_deadlines(
        app, people, world, session_factory) -> None:
    li = claimed(app, people, world)
    post(li, world.ticket_id, "reply")
    page = li.get(f"/tickets/{world.ticket_id}")
    assert page.status_code == 200
    html = page.text
    assert f'data-ticket-id="{world.ticket_id}"' in html and 'id="thread"' in html
    # the whole transcript, bot and human turns, in order
    thread = html[html.index('id="thread"'):]
    positions = [thread.index(text) for text in
                 ("我的快递显示签收了但我没收到", "我帮您转人工客服。", "您好，我来帮您查。")]
    assert positions == sorted(positions)
    assert "msg-customer" in thread and "msg-bot" in thread and "msg-agent" in thread
    # the customer card: masked phone only, segment, order
    assert "139****5678" in html and PHONE not in html
    assert "张伟" in html and "普通客户" in html
    # history: who did what
    assert "创建工单" in html and "领取" in html
    # every running SLA clock carries its deadline for the desk's script, in UTC
    with session_factory() as s:
        resolution = s.scalars(select(SlaTimer).where(
            SlaTimer.ticket_id == world.ticket_id, SlaTimer.kind == TimerKind.RESOLUTION)).one()
    iso = resolution.deadline_at.replace(tzinfo=NOW.tzinfo).isoformat()
    assert f'data-deadline="{iso}"' in html
    assert "2026-03-05 10:00" in html  # shown in the shop's time (Asia/Shanghai)
    # keyboard shortcuts can find the forms; no inline scripts or handlers
    for key in "rnse":
        assert f'data-shortcut="{key}"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # inline scripts
    assert not re.search(r"\son[a-z]+=", html)  # inline handlers
    # every word comes from the texts: no key shows itself
    assert not re.search(r"\bticket\.[a-z_]+(\.[a-z_]+)?\b", html.replace("ticket.css", ""))


def test_the_page_speaks_english_to_an_english_agent(app, people, world,
                                                     session_factory) -> None:
    with session_factory.begin() as s:
        s.get(Agent, people.desk.l1.id).language = "en"
    li = sign_in(app, people.desk.l1)
    html = li.get(f"/tickets/{world.ticket_id}").text
    assert "Claim ticket" in html and "Conversation" in html and "SLA deadlines" in html
    assert 'data-shortcut="c"' in html


def test_a_manager_sees_the_page_without_forms(app, people, world) -> None:
    html = sign_in(app, people.manager).get(f"/tickets/{world.ticket_id}").text
    assert "您可以查看此工单，但不能处理。" in html
    assert "data-shortcut" not in html and "/reveal" not in html


def test_htmx_posts_get_the_workspace_and_plain_forms_a_redirect(app, people, world) -> None:
    li = sign_in(app, people.desk.l1)
    token = li.headers.pop("X-CSRF-Token")  # forms carry the token in a field
    url = f"/api/v1/tickets/{world.ticket_id}"
    swapped = li.post(f"{url}/claim", data={"csrf_token": token}, headers=HTMX)
    assert swapped.status_code == 200
    assert swapped.text.lstrip().startswith('<div id="ticket-workspace"')
    assert "<html" not in swapped.text and "处理中" in swapped.text
    replied = li.post(f"{url}/reply", data={"csrf_token": token, "body": "已为您催件"},
                      headers=HTMX)
    assert "已为您催件" in replied.text and "发送中" in replied.text  # pending delivery
    plain = li.post(f"{url}/note", data={"csrf_token": token, "body": "内部"},
                    follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"/tickets/{world.ticket_id}"
    refused = li.post(f"{url}/solve", data={"csrf_token": token}, headers=HTMX)
    assert refused.status_code == 422 and refused.json()["error"]["message"] == \
        "请检查这些内容：resolution"


def test_each_panel_refreshes_itself_for_live_updates(app, people, world) -> None:
    li = claimed(app, people, world)
    post(li, world.ticket_id, "reply")
    for part, marker in (("thread", 'id="thread-panel"'), ("header", 'id="ticket-head"'),
                         ("timers", 'id="ticket-timers"'), ("events", 'id="ticket-events"')):
        panel = li.get(f"/tickets/{world.ticket_id}/part/{part}", headers=HTMX)
        assert panel.status_code == 200 and panel.text.lstrip().startswith("<")
        assert marker in panel.text and "<html" not in panel.text
        assert f'hx-trigger="kefu:ticket-{world.ticket_id} from:body' in panel.text
    assert "您好，我来帮您查。" in li.get(f"/tickets/{world.ticket_id}/part/thread").text
    assert li.get(f"/tickets/{world.ticket_id}/part/customer").status_code == 422
    zhao = sign_in(app, people.desk.l2)
    assert zhao.get(f"/tickets/{world.ticket_id}/part/thread").status_code == 404


def test_a_canned_reply_fills_the_reply_box(app, people, world) -> None:
    li = claimed(app, people, world)
    box = li.get(f"/tickets/{world.ticket_id}/reply-box?canned=greeting", headers=HTMX)
    assert box.status_code == 200
    assert box.text.lstrip().startswith('<textarea id="reply-body"')
    assert "张伟，您好！我是客服Li" in box.text
    delayed = li.get(f"/tickets/{world.ticket_id}/reply-box?canned=parcel_delayed"
                     f"&order_id={world.order_id}", headers=HTMX)
    assert "[订单号]" not in delayed.text
    assert li.get(f"/tickets/{world.ticket_id}/reply-box?canned=nope").status_code == 404
    # without scripts the select's form reloads the page with the reply box filled
    page = li.get(f"/tickets/{world.ticket_id}?canned=closing")
    assert "感谢您的耐心" in page.text


def test_reply_delivery_states_follow_the_outbox(app, people, world, session_factory,
                                                 clock) -> None:
    li = claimed(app, people, world)
    post(li, world.ticket_id, "reply")
    clock.advance(minutes=1)
    post(li, world.ticket_id, "reply", body="第二条")
    first, second = outbox_rows(session_factory, world.ticket_id, "agent_reply")
    with session_factory.begin() as s:
        outbox.mark_delivered(s, message_id=first.id, now=NOW + timedelta(seconds=5))
        outbox.mark_failed(s, message_id=second.id, error="telegram down", now=NOW)
    thread = li.get(f"/api/v1/tickets/{world.ticket_id}").json()["thread"]
    states = [(m["body"], m["delivery"]["state"] if m["delivery"] else None) for m in thread]
    assert states[-2:] == [("您好，我来帮您查。", "delivered"), ("第二条", "failed")]
    assert thread[-1]["delivery"]["attempts"] == 1
    assert thread[0]["delivery"] is None  # customers' words are not deliveries
    html = li.get(f"/tickets/{world.ticket_id}").text
    assert "已送达" in html and "发送失败" in html


def attach_photo(session_factory, world, folder, *, extra: dict | None = None) -> int:
    digest = hashlib.sha256(PHOTO).hexdigest()
    (folder / f"{digest}.jpg").write_bytes(PHOTO)
    attachment = {"kind": "photo", "telegram_file_id": "AgAD", "path": str(folder / "x.jpg"),
                  "sha256": digest, "bytes": len(PHOTO), **(extra or {})}
    with session_factory.begin() as s:
        return tickets.add_customer_message(
            s, ticket_id=world.ticket_id, body="[图片]",
            attachments=[attachment, {"kind": "photo", "telegram_file_id": "lost"},
                         {"kind": "photo", "sha256": "../../../etc/passwd"}],
            now=NOW + timedelta(minutes=1)).id


def test_photos_are_served_only_to_who_may_see_the_ticket(app, people, world, photos,
                                                          session_factory) -> None:
    li = claimed(app, people, world)
    message_id = attach_photo(session_factory, world, photos)
    url = f"/tickets/{world.ticket_id}/attachments/{message_id}"
    shown = li.get(f"{url}/0")
    assert shown.status_code == 200 and shown.content == PHOTO
    assert shown.headers["content-type"] == "image/jpeg"
    html = li.get(f"/tickets/{world.ticket_id}").text
    assert f'src="{url}/0"' in html and "图片未能保存" in html
    # another team, another ticket, a missing index, a reference without a file, traversal
    zhao = sign_in(app, people.desk.l2)
    assert zhao.get(f"{url}/0").status_code == 404
    assert li.get(f"/tickets/{world.stranger_ticket_id}/attachments/{message_id}/0"
                  ).status_code == 404
    for index in ("1", "2", "3", "-1"):
        assert li.get(f"{url}/{index}").status_code == 404, index
    assert li.get(f"{url}/..%2F..%2Fpii.key").status_code in (404, 422)
    assert li.get(f"/tickets/{world.ticket_id}/attachments/../../../etc/passwd"
                  ).status_code == 404


def test_a_tampered_attachment_row_cannot_point_outside_the_folder(app, people, world, photos,
                                                                   session_factory,
                                                                   tmp_path) -> None:
    li = claimed(app, people, world)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"secret")
    message_id = attach_photo(session_factory, world, photos,
                              extra={"sha256": "a" * 63 + "/", "path": str(secret)})
    assert li.get(f"/tickets/{world.ticket_id}/attachments/{message_id}/0").status_code == 404


def test_a_supervisor_reveals_from_the_page_and_the_page_shows_it(app, people, world,
                                                                  session_factory) -> None:
    from tests.ticketing.web.test_ticket_actions import supervised_ticket

    ticket_id = supervised_ticket(session_factory, people, world)
    chen = sign_in(app, people.desk.supervisor)
    page = chen.get(f"/tickets/{ticket_id}").text
    assert "查看完整信息" in page and PHONE not in page
    token = chen.headers.pop("X-CSRF-Token")
    shown = chen.post(f"/api/v1/customers/{world.customer_id}/reveal", headers=HTMX,
                      data={"csrf_token": token, "field": "phone", "reason": "回电",
                            "ticket_id": str(ticket_id)})
    assert shown.status_code == 200 and PHONE in shown.text
    assert shown.headers["cache-control"] == "no-store"
    assert PHONE not in chen.get(f"/tickets/{ticket_id}").text  # shown once, not kept
