"""`scorestream sink`: the score topic upserted into a database table by event id."""
