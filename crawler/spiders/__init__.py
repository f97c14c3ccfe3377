"""Scrapy spiders: papers by DOI and Radiopaedia teaching cases."""
