"""Our results beside the paper's (`dm.report.paper`), the notebooks' banners
(`dm.report.banners`) and the book's glue (`dm.report.book`). Only the
command line and the notebooks import it."""
