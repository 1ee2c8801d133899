"""AI pet avatar: the style catalogue, stylisation and compositing behind the pet-avatar runner."""
