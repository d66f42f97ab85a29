"""Queue Consumer Operator: the control plane that sizes Deployments of queue workers to their backlog."""
