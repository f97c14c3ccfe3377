"""Network side: Scrapy spiders, DOI resolution, crawl state and the item pipeline."""
