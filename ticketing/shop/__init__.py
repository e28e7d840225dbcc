"""The shop's own data as customers ask about it: customers and their channel identities,
orders, logistics, the catalog, and refunds."""
