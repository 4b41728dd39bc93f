"""ASAN ödəniş: the state payment portal (fees, fines, duties, refunds, receipts)."""
