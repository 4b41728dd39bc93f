"""E-agriculture (EKTİS): farmers, land parcels, sowing declarations and their subsidies."""
