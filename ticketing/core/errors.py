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


class AddressLocked(Conflict):
    """The order has shipped (or ended): its delivery address can no longer be changed here."""

    code = "address_locked"
    message_zh = "订单已发货或已结束，收货地址不能再修改。"
    message_en = "The order has shipped or ended, so its delivery address can no longer change."


class InvalidAddress(ValidationError):
    """A delivery address too short or too long to be one."""

    code = "invalid_address"
    message_zh = "这看起来不像完整的收货地址，请写上收货人、电话和详细地址。"
    message_en = ("That doesn't look like a full delivery address: please give the recipient, "
                  "phone number and full address.")


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


# --- shop ingestion (ticketing.shop.ingest): one error per thing a shop's row can get wrong ---
class FieldTooLong(ValidationError):
    code = "field_too_long"
    message_zh = "字段内容超出长度限制。"
    message_en = "A field is longer than allowed."


class UnknownState(ValidationError):
    code = "unknown_state"
    message_zh = "状态值无法识别。"
    message_en = "The state is not one Kefu knows."


class InvalidPhone(ValidationError):
    code = "invalid_phone"
    message_zh = "手机号码格式不正确。"
    message_en = "The phone number is not valid."


class BatchTooLarge(ValidationError):
    code = "batch_too_large"
    message_zh = "一批数据的行数超出上限。"
    message_en = "The batch has more rows than allowed."


class InconsistentAmounts(InvalidAmount):
    code = "inconsistent_amounts"
    message_zh = "金额前后不一致。"
    message_en = "The amounts do not add up."


class RefundExceedsPaid(InvalidAmount):
    code = "refunded_exceeds_paid"
    message_zh = "退款金额超过了实付金额。"
    message_en = "More is refunded than was paid."


class UnknownProduct(NotFound):
    code = "unknown_product"
    message_zh = "订单中的商品不存在，请先导入商品。"
    message_en = "An item names a product Kefu does not have; send the product first."


class StateGoesBackwards(IllegalTransition):
    code = "state_backwards"
    message_zh = "状态不能倒退。"
    message_en = "The state cannot go back to an earlier one."


class KeyTaken(Conflict):
    """A unique value (SKU, tracking number, phone) already belongs to another record."""

    code = "key_taken"
    message_zh = "该编号已属于另一条记录。"
    message_en = "That value already belongs to another record."


class RateLimited(KefuError):
    """Too many requests with one API token; ``context['retry_after']`` says when to retry."""

    code = "rate_limited"
    message_zh = "请求过于频繁，请稍后再试。"
    message_en = "Too many requests; please retry later."
