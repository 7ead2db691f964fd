"""What each channel sends, as far as we use it: unknown fields are ignored, used fields strictly typed.

Amounts are kept as decimal strings end to end (``Decimal`` here, validated), never floats.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _aware(value: datetime) -> datetime:
    """Channels that send no zone (WooCommerce *_gmt fields) mean UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# ---- Shopify (REST Admin API order payload) ---------------------------------------------


class ShopifyCustomer(Lenient):
    id: int | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class ShopifyAddress(Lenient):
    first_name: str | None = None
    last_name: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province_code: str | None = None
    zip: str | None = None
    country_code: str | None = None
    phone: str | None = None


class ShopifyLineItem(Lenient):
    sku: str | None = None
    title: str | None = None
    quantity: int = Field(ge=0)
    price: Decimal


class ShopifyFulfillment(Lenient):
    status: str | None = None
    tracking_company: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None


class ShopifyOrder(Lenient):
    id: int
    created_at: datetime
    updated_at: datetime
    currency: str = Field(min_length=3, max_length=3)
    total_price: Decimal
    subtotal_price: Decimal | None = None
    total_tax: Decimal | None = None
    total_discounts: Decimal | None = None
    financial_status: str | None = None
    fulfillment_status: str | None = None
    cancelled_at: datetime | None = None
    customer: ShopifyCustomer | None = None
    shipping_address: ShopifyAddress | None = None
    billing_address: ShopifyAddress | None = None
    line_items: list[ShopifyLineItem] = []
    fulfillments: list[ShopifyFulfillment] = []


class ShopifyRefund(Lenient):
    id: int
    order_id: int
    created_at: datetime


# ---- WooCommerce (REST API v3 order) ----------------------------------------------------


class WooAddress(Lenient):
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    state: str | None = None
    postcode: str | None = None
    country: str | None = None
    email: str | None = None
    phone: str | None = None


class WooLineItem(Lenient):
    sku: str | None = None
    name: str | None = None
    quantity: int = Field(ge=0)
    price: Decimal


class WooOrder(Lenient):
    id: int
    status: str
    currency: str = Field(min_length=3, max_length=3)
    total: Decimal
    total_tax: Decimal | None = None
    shipping_total: Decimal | None = None
    discount_total: Decimal | None = None
    customer_id: int | None = None
    date_created_gmt: datetime
    date_modified_gmt: datetime
    date_paid_gmt: datetime | None = None
    transaction_id: str | None = None
    billing: WooAddress | None = None
    shipping: WooAddress | None = None
    line_items: list[WooLineItem] = []

    @field_validator("date_created_gmt", "date_modified_gmt", "date_paid_gmt")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return _aware(value) if value is not None else None


# ---- Stripe (event with a PaymentIntent or Charge) -----------------------------------------


class StripeObject(Lenient):
    id: str
    object: str
    amount: int | None = Field(default=None, ge=0)
    amount_received: int | None = Field(default=None, ge=0)
    amount_refunded: int | None = Field(default=None, ge=0)
    currency: str = Field(min_length=3, max_length=3)
    receipt_email: str | None = None
    customer: str | None = None
    metadata: dict[str, str] = {}
    payment_intent: str | None = None


class StripeData(Lenient):
    object: StripeObject


class StripeEvent(Lenient):
    id: str
    type: str
    created: int
    data: StripeData


# ---- custom channels (Standard Webhooks, our documented order shape) -----------------------

CanonicalType = Literal[
    "order.created",
    "order.updated",
    "order.paid",
    "order.payment_failed",
    "order.fulfilled",
    "order.shipped",
    "order.cancelled",
    "order.refunded",
]


class CustomCustomer(Lenient):
    id: str | None = None
    email: str | None = None
    name: str | None = None
    company: str | None = None


class CustomAddress(Lenient):
    name: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    phone: str | None = None


class CustomItem(Lenient):
    sku: str | None = None
    title: str | None = None
    quantity: int = Field(ge=0)
    unit_price: Decimal | None = None


class CustomTracking(Lenient):
    carrier: str | None = None
    number: str
    url: str | None = None


class CustomOrderData(Lenient):
    order_id: str = Field(min_length=1)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    total: Decimal | None = None
    customer: CustomCustomer | None = None
    items: list[CustomItem] = []
    shipping_address: CustomAddress | None = None
    billing_address: CustomAddress | None = None
    tracking: list[CustomTracking] = []
    updated_at: datetime | None = None


class CustomEvent(Lenient):
    type: CanonicalType
    timestamp: datetime
    data: CustomOrderData

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _aware(value)
