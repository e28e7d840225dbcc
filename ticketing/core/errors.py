"""The one exception hierarchy of Kefu's backend.

Every service raises a subclass of :class:`KefuError` for bad input or a refused action, and
raises it before writing anything, so a caught error means nothing changed. Each error has a
stable ``code`` (for APIs and actions) and bilingual text for whoever must read it.
"""

from __future__ import annotations


class KefuError(Exception):
    """Base of every error Kefu raises on purpose."""

    code = "kefu_error"
    message_zh = "请求无法处理。"
    message_en = "The request could not be processed."

    def __init__(self, detail: str | None = None, **context: object) -> None:
        self.detail = detail or self.message_en
        self.context = context
        super().__init__(self.detail)

    def text(self, language: str = "en") -> str:
        """The customer/agent-facing sentence in ``language`` ('zh' or 'en')."""
        return self.message_zh if language.startswith("zh") else self.message_en


# --- input -----------------------------------------------------------------------------------
class ValidationError(KefuError):
    """Input is malformed (wrong format, out of range, missing a required field)."""

    code = "invalid_input"
    message_zh = "输入的信息格式不正确。"
    message_en = "The information given is not valid."


class InvalidOrderNumber(ValidationError):
    code = "invalid_order_number"
    message_zh = "订单号格式不正确，订单号是16到19位数字。"
    message_en = "That order number is not valid: order numbers have 16 to 19 digits."


class InvalidAmount(ValidationError):
    code = "invalid_amount"
    message_zh = "金额不正确。"
    message_en = "That amount is not valid."


class InvalidScore(ValidationError):
    code = "invalid_score"
    message_zh = "评分需要是1到5之间的整数。"
    message_en = "The score must be a whole number from 1 to 5."


# --- lookups ---------------------------------------------------------------------------------
class NotFound(KefuError):
    code = "not_found"
    message_zh = "没有找到相关记录。"
    message_en = "Nothing was found."


class OrderNotFound(NotFound):
    """Also raised for another customer's order: the two must be indistinguishable."""

    code = "order_not_found"
    message_zh = "没有找到这个订单，请核对订单号。"
    message_en = "We could not find that order. Please check the order number."


class CustomerNotFound(NotFound):
    code = "customer_not_found"
    message_zh = "没有找到该客户。"
    message_en = "Customer not found."


class TicketNotFound(NotFound):
    code = "ticket_not_found"
    message_zh = "没有找到这个工单。"
    message_en = "We could not find that ticket."


class AgentNotFound(NotFound):
    code = "agent_not_found"
    message_zh = "没有找到该客服。"
    message_en = "Agent not found."


class RefundNotFound(NotFound):
    code = "refund_not_found"
    message_zh = "没有找到这笔退款申请。"
    message_en = "We could not find that refund request."


class SurveyNotFound(NotFound):
    code = "survey_not_found"
    message_zh = "没有找到这份评价。"
    message_en = "We could not find that survey."


# --- refused actions -------------------------------------------------------------------------
class Conflict(KefuError):
    """The action is well-formed but the current state does not allow it."""

    code = "conflict"
    message_zh = "当前状态下无法执行该操作。"
    message_en = "This cannot be done in the current state."


class IllegalTransition(Conflict):
    code = "illegal_transition"
    message_zh = "当前状态下不能进行这个操作。"
    message_en = "That change is not allowed from the current state."


class AlreadyClaimed(Conflict):
    code = "already_claimed"
    message_zh = "该工单已被其他客服接手。"
    message_en = "Another agent has already claimed this ticket."


class TopTierReached(Conflict):
    code = "top_tier_reached"
    message_zh = "工单已在最高级别（L3），无法继续升级。"
    message_en = "The ticket is already at the highest tier (L3) and cannot be escalated."


class NotEligible(Conflict):
    """A refund the rules do not allow; ``context['route']`` says what to do instead."""

    code = "not_eligible"
    message_zh = "该订单不符合退款条件。"
    message_en = "This order is not eligible for a refund."


class RefundInProgress(Conflict):
    code = "refund_in_progress"
    message_zh = "这个订单已有一笔退款正在处理中。"
    message_en = "A refund for this order is already in progress."


class AlreadyRefunded(NotEligible, RefundInProgress):
    """The order's money has already gone back: not eligible, and a refund exists.

    Both bases on purpose: a double-submitted cancellation finds the order cancelled and
    fully refunded by its twin, and callers catching either error handle it correctly.
    """

    code = "already_refunded"
    message_zh = "这个订单已经全额退款了。"
    message_en = "This order has already been refunded in full."


class DirectRefundAvailable(Conflict):
    """An after-sales ticket was asked for an order the refund rules cover directly."""

    code = "direct_refund_available"
    message_zh = "这个订单可以直接申请退款，无需售后工单。"
    message_en = "This order can be refunded directly; no after-sales ticket is needed."


class AlreadyAnswered(Conflict):
    code = "already_answered"
    message_zh = "您已经评价过了，谢谢！"
    message_en = "You have already rated this service. Thank you!"


class PermissionDenied(KefuError):
    code = "permission_denied"
    message_zh = "您没有权限执行该操作。"
    message_en = "You are not allowed to do that."


class AuthenticationFailed(PermissionDenied):
    """Wrong login or password, an unknown or expired session or token: never says which."""

    code = "authentication_failed"
    message_zh = "用户名或密码错误，或登录已过期。"
    message_en = "Wrong login or password, or your sign-in has expired."


class AccountLocked(PermissionDenied):
    """Too many failed sign-ins from this account or this address (rules §SEC-1)."""

    code = "account_locked"
    message_zh = "登录失败次数过多，已暂时锁定，请 15 分钟后再试。"
    message_en = "Too many failed sign-ins; locked for 15 minutes."


# --- infrastructure --------------------------------------------------------------------------
class ConfigurationError(KefuError):
    code = "configuration_error"
    message_zh = "系统配置错误。"
    message_en = "Kefu is misconfigured."


class CryptoError(KefuError):
    code = "crypto_error"
    message_zh = "数据解密失败。"
    message_en = "Encrypted data could not be read."
