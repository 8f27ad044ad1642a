"""Prefect flows and deployments of influence_stage; thin wrappers around the library's steps."""
