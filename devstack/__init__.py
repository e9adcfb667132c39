"""The local stack: runs the product on one machine with no AWS account. Never deployed."""
