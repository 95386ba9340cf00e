"""Periodic audits: policies on a schedule, frozen stratified samples, blind reviews,
findings, reports and trends across cycles."""
