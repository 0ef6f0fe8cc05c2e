"""Column names of the data contract, in one place for both the training job and the service.

Everything that reads or writes a contract table refers to these constants rather than to string
literals, so that renaming a column is a one-line change here.
"""

from typing import Final

# customers
CUSTOMER_ID: Final = "customer_id"
SIGNUP_DATE: Final = "signup_date"
COUNTRY: Final = "country"
AGE_BAND: Final = "age_band"

# products
PRODUCT_ID: Final = "product_id"
NAME: Final = "name"
CATEGORY: Final = "category"
BRAND: Final = "brand"
PRICE: Final = "price"
IN_STOCK: Final = "in_stock"

# orders (one row per order line)
ORDER_ID: Final = "order_id"
LINE_ID: Final = "line_id"
QUANTITY: Final = "quantity"
UNIT_PRICE: Final = "unit_price"
ORDERED_AT: Final = "ordered_at"
PROMISED_DELIVERY_AT: Final = "promised_delivery_at"
DELIVERED_AT: Final = "delivered_at"
STATUS: Final = "status"

# survey responses (nps_responses, csat_responses, ces_responses share one shape)
RESPONSE_ID: Final = "response_id"
SCORE: Final = "score"
RESPONDED_AT: Final = "responded_at"
TOUCHPOINT: Final = "touchpoint"
COMMENT: Final = "comment"

# table names
CUSTOMERS: Final = "customers"
PRODUCTS: Final = "products"
ORDERS: Final = "orders"
NPS_RESPONSES: Final = "nps_responses"
CSAT_RESPONSES: Final = "csat_responses"
CES_RESPONSES: Final = "ces_responses"

# Columns the validator adds to rejected rows in the quarantine file.
SOURCE_FILE: Final = "_file"
SOURCE_ROW: Final = "_row"
REJECT_REASON: Final = "_reason"
