"""The demo shop: ~200 products in categories (consumables carry a replenishment cycle), the
countries shoppers come from, and the name lists identifiers are built from."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

SHOP_URL = "https://shop.example"
PRODUCT_COUNT = 200

# (category, replenishment_days or None, price range, relative share of the catalogue, nouns)
CATEGORIES: tuple[tuple[str, int | None, tuple[float, float], float, tuple[str, ...]], ...] = (
    ("coffee", 30, (9.0, 24.0), 1.2,
     ("Espresso Beans", "House Blend", "Decaf Roast", "Cold Brew Pack", "Single Origin")),
    ("tea", 40, (6.0, 18.0), 0.8, ("Green Tea", "Earl Grey", "Chai Blend", "Herbal Infusion", "Matcha")),
    ("shampoo", 45, (7.0, 22.0), 0.9, ("Shampoo", "Conditioner", "Scalp Wash", "Hair Mask")),
    ("vitamins", 60, (10.0, 35.0), 0.9, ("Multivitamin", "Vitamin D3", "Omega-3", "Magnesium", "Probiotic")),
    ("pet_food", 30, (15.0, 60.0), 0.6, ("Dry Dog Food", "Cat Kibble", "Puppy Formula", "Grain-Free Mix")),
    ("mugs", None, (12.0, 30.0), 0.8, ("Ceramic Mug", "Travel Tumbler", "Espresso Cup", "Latte Bowl")),
    ("apparel", None, (20.0, 90.0), 1.4, ("Hoodie", "T-Shirt", "Beanie", "Apron", "Socks")),
    ("home", None, (15.0, 120.0), 1.1, ("Pour-Over Kit", "Grinder", "Kettle", "Scale", "Canister")),
    ("accessories", None, (5.0, 45.0), 0.9, ("Tote Bag", "Filter Papers", "Keychain", "Coaster Set")),
    ("books", None, (12.0, 40.0), 0.5, ("Brewing Guide", "Cookbook", "Travel Journal", "Field Notes")),
)
ADJECTIVES = ("Classic", "Organic", "Premium", "Everyday", "Signature", "Morning", "Small-Batch", "Limited",
              "Essential", "Artisan", "Bold", "Gentle")

# (code, share of shoppers, currency, calling code, optional full name used in some customer rows)
COUNTRIES: tuple[tuple[str, float, str, str, str], ...] = (
    ("US", 0.70, "USD", "1", "United States"),
    ("GB", 0.12, "GBP", "44", "United Kingdom"),
    ("CA", 0.08, "CAD", "1", "Canada"),
    ("AU", 0.05, "AUD", "61", "Australia"),
    ("DE", 0.05, "EUR", "49", "Germany"),
)
US, GB, CA, AU, DE = range(5)

FIRST_NAMES = ("James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
               "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
               "Charles", "Karen", "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra",
               "Oliver", "Amelia", "Harry", "Isla", "Jack", "Ava", "Noah", "Mia", "Leo", "Emily", "Lukas",
               "Hannah", "Chloe", "Liam", "Grace", "Ethan", "Zoe", "Aiden", "Priya", "Wei", "Sofia", "Mateo")
LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
              "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson",
              "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young",
              "Evans", "Wright", "Roberts", "Green", "Hughes", "Edwards", "Mueller", "Schmidt", "Schneider",
              "Fischer", "Nguyen", "Patel", "Kim", "Chen", "Singh", "O'Brien", "Murphy", "Kelly", "Cooper")
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")


@dataclass(frozen=True)
class Catalog:
    """Products as numpy arrays (index = position in the table) plus the table itself."""

    table: pa.Table
    product_ids: pa.Array
    category: np.ndarray  # int index into CATEGORIES
    price: np.ndarray
    replenishment_days: np.ndarray  # 0 where not replenishable
    category_start: np.ndarray  # first product index of each category
    category_size: np.ndarray
    view_properties: pa.Array  # JSON text for product_view events

    @property
    def replenishable(self) -> np.ndarray:
        return np.flatnonzero(self.replenishment_days > 0)


def build_catalog(seed: int) -> Catalog:
    """The same ~200 products for a given seed, grouped by category."""
    rng = np.random.default_rng([seed, 0xCA7A106])
    shares = np.array([c[3] for c in CATEGORIES])
    sizes = np.maximum(1, np.floor(shares / shares.sum() * PRODUCT_COUNT)).astype(np.int64)
    sizes[0] += PRODUCT_COUNT - sizes.sum()
    category = np.repeat(np.arange(len(CATEGORIES)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    lo = np.array([CATEGORIES[c][2][0] for c in category])
    hi = np.array([CATEGORIES[c][2][1] for c in category])
    price = np.floor(lo + rng.random(len(category)) * (hi - lo)) + 0.99
    replen = np.array([CATEGORIES[c][1] or 0 for c in category], dtype=np.int64)
    adjectives = rng.integers(0, len(ADJECTIVES), len(category))
    nouns = [CATEGORIES[c][4][rng.integers(0, len(CATEGORIES[c][4]))] for c in category]
    ids = [f"sku-{i + 1:04d}" for i in range(len(category))]
    names = [f"{ADJECTIVES[a]} {noun}" for a, noun in zip(adjectives, nouns)]
    table = pa.table({
        "product_id": pa.array(ids, pa.string()),
        "name": pa.array(names, pa.string()),
        "category": pa.array([CATEGORIES[c][0] for c in category], pa.string()),
        "price": pa.array(price, pa.float64()),
        "replenishment_days": pa.array(replen, pa.int64(), mask=replen == 0),
        "url": pa.array([f"{SHOP_URL}/p/{i}" for i in ids], pa.string()),
        "image_url": pa.array([f"{SHOP_URL}/img/{i}.jpg" for i in ids], pa.string()),
    })
    view_props = [f'{{"category": "{CATEGORIES[c][0]}", "price": {p:.2f}}}' for c, p in zip(category, price)]
    return Catalog(table=table, product_ids=table["product_id"].combine_chunks(), category=category, price=price,
                   replenishment_days=replen, category_start=starts, category_size=sizes,
                   view_properties=pa.array(view_props, pa.string()))
