"""Run the Durable side of the matching system on one machine, without AWS.

``stack.LocalDurableStack`` starts every part (DynamoDB from moto, AWS's durable
execution emulator, a Lambda Invoke stand-in hosting the workflow handler, the
Durable API behind real SigV4 / API-key checks, and a simulated GlobalCoach).
See docs/local-durable-stack.md.
"""
