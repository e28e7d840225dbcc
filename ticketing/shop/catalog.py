"""Product questions (rules §PROD-1, §PROD-2): fuzzy name matching, descriptions, and live stock.

Customers misspell names, use nicknames ("豆子耳机"), half names, and mix languages
("蓝牙earbuds"). We score a query against every product's Chinese name, English name and
aliases with rapidfuzz, and mixed-language queries part by part. When two products score
nearly the same the answer is ambiguous and the bot offers buttons instead of guessing.
Stock is re-read from the database before we say anything about it, and an out-of-stock
product is never described as available or deliverable.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from rapidfuzz import fuzz
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from ticketing.core.i18n import Text, normalize_language
from ticketing.core.models import OrderItem, Product
from ticketing.core.money import format_amount

MATCH_SCORE = 70.0  # at or above: we are talking about this product
SUGGEST_SCORE = 50.0  # between: "did you mean…?"
AMBIGUOUS_GAP = 5.0  # top scores this close: ask which one
MAX_BUTTONS = 3

_CJK = r"\u3400-\u9fff"
_RUNS = re.compile(rf"[{_CJK}]+|[a-z0-9]+")


@dataclass(frozen=True)
class ProductMatch:
    product: Product
    score: float


@dataclass(frozen=True)
class Resolution:
    """What a product question resolved to.

    ``product`` is set when one product clearly matches. ``ambiguous`` means the top
    ``candidates`` (≤ 3) are too close to call: offer them as buttons. With neither,
    ``suggestions`` holds near misses or, failing those, popular products in stock.
    """

    product: Product | None
    ambiguous: bool
    candidates: list[ProductMatch] = field(default_factory=list)
    suggestions: list[Product] = field(default_factory=list)


def normalize(text: str) -> str:
    """Fold width and case, keep letters/digits/CJK, split Chinese from Latin runs."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_RUNS.findall(text))


def _is_cjk(run: str) -> bool:
    return bool(re.match(rf"[{_CJK}]", run))


def _pair_score(query: str, choice: str) -> float:
    """Similarity of one query run to one name: whole, partial (substring) or token-wise."""
    if not query or not choice:
        return 0.0
    best = fuzz.ratio(query, choice)
    # A partial match only means something when the query is not trivially short. Chinese
    # names are compounds that naturally contain what customers say ("蓝牙耳机" in
    # "无线蓝牙耳机"), so a substring counts fully; a Latin substring ("shirt" in
    # "sweatshirt") is weaker evidence than a whole word.
    cjk = _is_cjk(query)
    if len(query) >= (2 if cjk else 3) and len(query) <= len(choice):
        best = max(best, (1.0 if cjk else 0.9) * fuzz.partial_ratio(query, choice))
    if " " in query or " " in choice:
        best = max(best, 0.95 * fuzz.token_set_ratio(query, choice))
    return best


@lru_cache(maxsize=50_000)
def _normalized_names(name_zh: str, name_en: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    """A product's names as matching compares them; kept per process, keyed by the names
    themselves, so a renamed product is simply a new key and nothing goes stale."""
    return tuple(n for n in (normalize(x) for x in (name_zh, name_en, *aliases)) if n)


def _score(query: str, runs: list[str], choices: Sequence[str]) -> float:
    whole = max((_pair_score(query, c) for c in choices), default=0.0)
    if len(runs) < 2:
        return whole
    # mixed language or several words: each part may match a different name of the product
    total = sum(len(r) for r in runs)
    parts = sum(max(_pair_score(r, c) for c in choices) * len(r) for r in runs) / total
    return max(whole, parts)


def _ranked_ids(session: Session, *, query: str, min_score: float) -> list[tuple[int, float]]:
    """(product id, score) at ``min_score`` or better, best first (ties by id).

    Reads only the name columns (no ORM objects, no specs) and scores them against names
    normalised once per process (:func:`_normalized_names`); the caller loads the few
    products it shows. A catalogue of thousands stays one narrow query per question.
    """
    normalized = normalize(query)
    if not normalized:
        return []
    runs = normalized.split()
    rows = session.execute(select(Product.id, Product.name_zh, Product.name_en, Product.aliases))
    scored = []
    for product_id, name_zh, name_en, aliases in rows:
        choices = _normalized_names(name_zh or "", name_en or "", tuple(aliases or ()))
        score = round(_score(normalized, runs, choices), 1)
        if score >= min_score:
            scored.append((product_id, score))
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    return scored


def _matches(session: Session, ranked: list[tuple[int, float]]) -> list[ProductMatch]:
    found = {p.id: p for p in session.scalars(
        select(Product).where(Product.id.in_([i for i, _ in ranked])))} if ranked else {}
    return [ProductMatch(found[i], score) for i, score in ranked if i in found]


def search(
    session: Session, *, query: str, limit: int = 3, min_score: float = MATCH_SCORE
) -> list[ProductMatch]:
    """Products whose names fuzzily match ``query`` at ``min_score`` or better, best first."""
    ranked = _ranked_ids(session, query=query, min_score=min_score)[: max(limit, 0)]
    return _matches(session, ranked)


def popular(session: Session, *, limit: int = 3) -> list[Product]:
    """The most ordered products that are in stock, for "you might like" suggestions."""
    ordered = func.coalesce(func.sum(OrderItem.quantity), 0)
    rows = session.execute(
        select(Product)
        .outerjoin(OrderItem, OrderItem.product_id == Product.id)
        .where(Product.stock > 0)
        .group_by(Product.id)
        .order_by(ordered.desc(), Product.id)
        .limit(limit)
    ).scalars()
    return list(rows)


def resolve(session: Session, *, query: str) -> Resolution:
    """One product, a choice of up to three, or suggestions when nothing matches well."""
    ranked = _ranked_ids(session, query=query, min_score=SUGGEST_SCORE)
    good = [(i, score) for i, score in ranked if score >= MATCH_SCORE]
    if good:
        close = _matches(session, [(i, score) for i, score in good
                                   if good[0][1] - score < AMBIGUOUS_GAP][:MAX_BUTTONS])
        if len(close) == 1:
            return Resolution(product=close[0].product, ambiguous=False, candidates=close)
        return Resolution(product=None, ambiguous=True, candidates=close)
    near = [m.product for m in _matches(session, ranked[:MAX_BUTTONS])]
    return Resolution(
        product=None, ambiguous=False, suggestions=near or popular(session, limit=MAX_BUTTONS)
    )


# --- stock -----------------------------------------------------------------------------------
class StockLevel(str, enum.Enum):
    IN_STOCK = "in_stock"
    LOW = "low"
    OUT = "out"


def live_stock(product: Product) -> int:
    """Re-read the stock from the database (it changes with every sale) unless edited here."""
    state = inspect(product)
    if state.persistent and state.session is not None:
        if not state.attrs.stock.history.has_changes():
            state.session.refresh(product, attribute_names=["stock"])
    return product.stock


def stock_level(product: Product) -> StockLevel:
    stock = live_stock(product)
    if stock <= 0:
        return StockLevel.OUT
    if stock <= product.low_stock_threshold:
        return StockLevel.LOW
    return StockLevel.IN_STOCK


_STOCK_TEXT = {
    StockLevel.IN_STOCK: Text("有现货，可以下单。", "In stock and available to order."),
    StockLevel.LOW: Text(
        "库存紧张，仅剩 {stock} 件，喜欢请尽快下单。",
        "Low stock: only {stock} left, so order soon if you want it.",
    ),
    StockLevel.OUT: Text(
        "这款商品目前缺货，暂时不能下单，到货时间还不确定。",
        "This product is out of stock and cannot be ordered right now; we do not know yet "
        "when it will be back.",
    ),
}


def stock_status(product: Product, *, language: str) -> str:
    """The live stock in words: available, only N left, or out of stock (no promises)."""
    level = stock_level(product)
    return _STOCK_TEXT[level].get(language, stock=product.stock)


# --- description -----------------------------------------------------------------------------
_PRICE = Text("价格：{price}", "Price: {price}")
_SPECS = Text("规格：{specs}", "Specs: {specs}")
_DELIVERY = Text("配送：{delivery}", "Delivery: {delivery}")
_RETURN_YES = Text("售后：支持7天无理由退货。", "After-sales: 7-day no-reason returns accepted.")
_RETURN_NO = Text(
    "售后：该商品不支持7天无理由退货，质量问题仍可申请售后。",
    "After-sales: no 7-day no-reason return for this product; quality problems are still "
    "covered.",
)
_STOCK = Text("库存：{status}", "Stock: {status}")


_UNLISTED = Text("（商品已下架）", "(product no longer listed)")


def product_name(product: Product | None, *, language: str | None) -> str:
    """A product's name in the customer's language: the one home of that choice (orders,
    refunds, stock answers and the desk all show it); a deleted product says so."""
    if product is None:
        return _UNLISTED.get(language)
    return product.name_zh if normalize_language(language) == "zh" else product.name_en


def describe(product: Product, *, language: str) -> str:
    """Name, price, specs, delivery, return terms and live stock (rules §PROD-1), in one message."""
    lang = normalize_language(language)
    specs = (product.specs or {}).get(lang) or {}
    separator = "；" if lang == "zh" else "; "
    colon = "：" if lang == "zh" else ": "
    level = stock_level(product)
    lines = [
        product_name(product, language=lang),
        _PRICE.get(lang, price=format_amount(product.price_cents)),
    ]
    if specs:
        joined = separator.join(f"{k}{colon}{v}" for k, v in specs.items())
        lines.append(_SPECS.get(lang, specs=joined))
    delivery = product.delivery_zh if lang == "zh" else product.delivery_en
    if delivery and level is not StockLevel.OUT:  # never promise shipping what we do not have
        lines.append(_DELIVERY.get(lang, delivery=delivery))
    lines.append((_RETURN_YES if product.no_reason_return_7d else _RETURN_NO).get(lang))
    lines.append(_STOCK.get(lang, status=stock_status(product, language=lang)))
    return "\n".join(lines)
