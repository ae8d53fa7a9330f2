"""Sluice's control plane: reconciles Connector objects into runtime Deployments."""
