"""Uploads: receiving, inspecting and storing media, and serving it to those who may see it."""
