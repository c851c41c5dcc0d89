"""Shotfield's backend: the stages that turn footage into a job folder. Never imports bpy."""
__version__ = "0.1.0"
