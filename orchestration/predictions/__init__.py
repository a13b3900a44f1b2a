"""Predicted lifecycle: purchase-cadence models fitted on the warehouse's purchase summary."""
