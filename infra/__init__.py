"""Deployment: the CloudFormation resources merged into Chalice's SAM output, and the packaging step."""
