"""incentives"""
