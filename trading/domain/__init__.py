"""trading/domain"""
