"""`suuupra dashboard`: one self-refreshing web page that charts every ClickHouse panel (see `server`)."""
