"""Product pages: `GET /v1/products/{product_id}/similar`."""
