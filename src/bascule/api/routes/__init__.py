"""The API's routers, one per noun; ``app.create_app`` mounts them under /api/v1."""
