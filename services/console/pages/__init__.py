"""One module per area of the console; each declares ROUTES (and NAV). See ../README.md."""
