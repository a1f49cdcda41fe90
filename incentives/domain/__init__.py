"""incentives/domain"""
