"""Every word of the desk's own screens, in Chinese and English (the agent's choice)."""

from __future__ import annotations

from ticketing.core.i18n import Text

UI: dict[str, Text] = {
    "app_name": Text("客服工作台", "Kefu desk"),
    "sign_in": Text("登录", "Sign in"),
    "sign_out": Text("退出", "Sign out"),
    "login": Text("账号", "Login"),
    "password": Text("密码", "Password"),
    "signed_in_as": Text("当前用户", "Signed in as"),
    "language": Text("语言", "Language"),
    "queues": Text("工单队列", "Queues"),
    "not_found": Text("没有找到，或您无权查看。", "Not found, or not yours to see."),
    "error": Text("出错了", "Something went wrong"),
    "back": Text("返回", "Back"),
}


def ui(key: str, language: str | None) -> str:
    """The UI text ``key`` in ``language``; an unknown key shows itself (a visible bug)."""
    text = UI.get(key)
    return text.get(language) if text is not None else key
