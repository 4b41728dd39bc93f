"""The HTTP/JSON gateway: routes transcoded from the contracts' google.api.http bindings."""
