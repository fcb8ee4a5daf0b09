"""The names of the firm's clients: people and companies, as Australian as the firm."""

from __future__ import annotations

# fmt: off
FIRST = [
    "Amelia", "Olivia", "Isla", "Ava", "Mia", "Grace", "Chloe", "Ruby", "Zoe", "Harper", "Jack", "Oliver",
    "Noah", "Leo", "William", "Henry", "Thomas", "Lucas", "James", "Charlie", "Ethan", "Samuel", "Max",
    "Archie", "Hugo", "Ivy", "Sienna", "Matilda", "Evie", "Ella",
]
LAST = [
    "Nguyen", "Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor", "Johnson", "White", "Martin",
    "Anderson", "Thompson", "Walker", "Harris", "Lee", "Ryan", "Robinson", "Kelly", "King", "Davis", "Wright",
    "Evans", "Roberts", "Green", "Hall", "Wood", "Jackson", "Clarke", "Patel", "Khan",
]
COMPANY = [
    "Marlow", "Harbour", "Kestrel", "Banksia", "Wattle", "Coastal", "Summit", "Ironbark", "Bluegum",
    "Meridian", "Southern", "Granite", "Lachlan", "Riverside", "Eastwood", "Jacaranda", "Pelican", "Redgum",
    "Seabreeze", "Northgate",
]
# fmt: on
COMPANY_TAIL = ("Holdings Pty Ltd", "Developments Pty Ltd", "Trading Pty Ltd", "Group Pty Ltd", "Partners")
