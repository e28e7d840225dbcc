"""What the gateway itself says to customers, in Chinese and English."""

from ticketing.core.i18n import Text

TOO_LONG = Text(
    zh="消息太长了（最多 {limit} 个字），请分几条发送。",
    en="That message is too long (at most {limit} characters). Please split it up.",
)
RATE_LIMITED = Text(
    zh="您发消息有点快，请稍等一分钟再发，我们不会漏掉您的问题。",
    en="You're sending messages very quickly. Please wait a minute; we won't miss your question.",
)
ASSISTANT_DOWN = Text(
    zh="抱歉，智能助手暂时出了点问题。您的消息已保存，并已转给人工客服（工单号 {number}），"
       "我们会尽快在这里回复您。",
    en="Sorry, our assistant is having trouble right now. Your message is saved and has been "
       "passed to our service team (ticket {number}); we'll reply here as soon as we can.",
)
SERVICE_DOWN = Text(
    zh="抱歉，系统暂时繁忙，请稍后再试。",
    en="Sorry, our service is busy right now. Please try again in a moment.",
)
UNSUPPORTED = Text(
    zh="抱歉，我目前只能读懂文字消息。请用文字描述您的问题；如需发送图片，请先转人工客服。",
    en="Sorry, I can only read text messages for now. Please describe your question in words; "
       "to send a photo, ask for an agent first.",
)
ATTACHED = Text(
    zh="图片已收到，已附在您的工单 {number} 上。",
    en="Got your photo; it's attached to your ticket {number}.",
)
PHOTO_BODY = Text(zh="[图片]", en="[photo]")
SHARE_PHONE = Text(zh="📱 共享我的手机号", en="📱 Share my phone number")
VERIFIED = Text(
    zh="验证成功，{name}！现在可以查询您的订单了。",
    en="You're verified, {name}! You can ask about your orders now.",
)
NOT_OWN_CONTACT = Text(
    zh="为保护账户安全，只能共享您自己的手机号，不能使用他人的联系人。",
    en="For your account's safety, please share your own phone number, not someone else's contact.",
)
NO_CUSTOMER = Text(
    zh="没有找到使用这个手机号的账户。请使用下单时的手机号，或直接问我商品和售后政策。",
    en="I couldn't find an account with this phone number. Please use the number you ordered "
       "with, or ask me about products and policies.",
)
UNREADABLE = Text(
    zh="抱歉，这条消息无法读取，请重新输入文字后再发送。",
    en="Sorry, that message could not be read. Please type it again and resend it.",
)
BUSY = Text(
    zh="当前咨询人数较多，请稍等片刻再发一次，我们会尽快回复。",
    en="Many people are asking right now. Please send your message again in a moment.",
)
PRIVATE_ONLY = Text(
    zh="为保护您的隐私，我只在私聊中服务。请私聊我咨询订单、退款等问题。",
    en="To protect your privacy, I only help in private chats. Please message me directly.",
)
