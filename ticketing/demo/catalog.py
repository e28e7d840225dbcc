"""The fixed tables behind the demo shop: products, people, places, carriers.

Kept apart from ``demo_data`` (which turns them into rows) so the generator stays readable.
Everything here is invented for demonstration.
"""

from __future__ import annotations

from typing import NamedTuple


class DemoProduct(NamedTuple):
    category: str
    name_zh: str
    name_en: str
    aliases: tuple[str, ...]
    price_yuan: float
    stock: int
    return_7d: bool
    specs: tuple[tuple[str, str, str, str], ...]  # (key_zh, value_zh, key_en, value_en)


P = DemoProduct
PRODUCTS: tuple[DemoProduct, ...] = (
    # electronics
    P("electronics", "无线蓝牙耳机 Pro", "Wireless Bluetooth Earbuds Pro", ("蓝牙耳机", "豆子耳机", "airpods", "earbuds"),
      299, 120, True, (("颜色", "白色", "Colour", "white"), ("续航", "30小时", "Battery", "30 hours"), ("降噪", "主动降噪", "Noise cancelling", "active"))),
    P("electronics", "头戴式降噪耳机", "Over-Ear Noise Cancelling Headphones", ("头戴耳机", "降噪耳机", "headphones"),
      899, 3, True, (("颜色", "黑色", "Colour", "black"), ("续航", "40小时", "Battery", "40 hours"))),
    P("electronics", "智能手表 S3", "Smart Watch S3", ("手表", "智能表", "smartwatch", "watch"),
      1299, 45, True, (("屏幕", "1.4英寸 AMOLED", "Screen", "1.4-inch AMOLED"), ("防水", "5ATM", "Water resistance", "5 ATM"))),
    P("electronics", "20000毫安充电宝", "20000mAh Power Bank", ("充电宝", "移动电源", "powerbank", "battery pack"),
      159, 200, True, (("容量", "20000毫安时", "Capacity", "20000 mAh"), ("快充", "22.5W", "Fast charging", "22.5 W"))),
    P("electronics", "65W氮化镓充电器", "65W GaN Charger", ("充电头", "快充头", "gan charger", "charger"),
      129, 0, True, (("功率", "65W", "Power", "65 W"), ("接口", "2C1A", "Ports", "2×USB-C, 1×USB-A"))),
    P("electronics", "机械键盘 K8", "Mechanical Keyboard K8", ("键盘", "机械键盘", "keyboard"),
      459, 28, True, (("轴体", "茶轴", "Switches", "brown"), ("连接", "蓝牙+有线", "Connection", "Bluetooth + wired"))),
    P("electronics", "无线静音鼠标", "Silent Wireless Mouse", ("鼠标", "静音鼠标", "mouse"),
      89, 4, True, (("DPI", "1600", "DPI", "1600"), ("电池", "AA电池一节", "Battery", "one AA"))),
    P("electronics", "便携蓝牙音箱", "Portable Bluetooth Speaker", ("音箱", "小音箱", "speaker"),
      239, 60, True, (("防水", "IPX7", "Water resistance", "IPX7"), ("续航", "12小时", "Battery", "12 hours"))),
    P("electronics", "智能台灯", "Smart Desk Lamp", ("台灯", "护眼灯", "desk lamp"),
      199, 35, True, (("色温", "2700K-6500K", "Colour temperature", "2700K-6500K"), ("控制", "App/语音", "Control", "app / voice"))),
    P("electronics", "平板电脑保护套", "Tablet Case", ("平板壳", "保护壳", "ipad case"),
      69, 150, True, (("适配", "11英寸", "Fits", "11-inch"), ("材质", "PU皮", "Material", "PU leather"))),
    # clothing
    P("clothing", "纯棉圆领T恤", "Cotton Crew-Neck T-Shirt", ("T恤", "短袖", "tee", "tshirt"),
      79, 300, True, (("材质", "100%棉", "Material", "100% cotton"), ("尺码", "S-XXL", "Sizes", "S-XXL"))),
    P("clothing", "轻薄羽绒服", "Lightweight Down Jacket", ("羽绒服", "羽绒外套", "down jacket", "puffer"),
      499, 12, True, (("填充", "90%白鸭绒", "Filling", "90% white duck down"), ("尺码", "S-XXL", "Sizes", "S-XXL"))),
    P("clothing", "高腰牛仔裤", "High-Waist Jeans", ("牛仔裤", "裤子", "jeans", "denim"),
      229, 80, True, (("版型", "直筒", "Fit", "straight"), ("尺码", "25-32", "Sizes", "25-32"))),
    P("clothing", "运动跑步鞋", "Running Shoes", ("跑鞋", "运动鞋", "sneakers", "runners"),
      399, 2, True, (("鞋码", "36-45", "Sizes", "EU 36-45"), ("重量", "约230克", "Weight", "about 230 g"))),
    P("clothing", "羊毛围巾", "Wool Scarf", ("围巾", "scarf"),
      159, 40, True, (("材质", "100%羊毛", "Material", "100% wool"), ("尺寸", "180×30厘米", "Size", "180×30 cm"))),
    P("clothing", "莫代尔内裤三条装", "Modal Underwear (3-Pack)", ("内裤", "underwear", "boxers"),
      99, 500, False, (("材质", "莫代尔", "Material", "modal"), ("包装", "3条", "Pack", "3 pieces"))),
    P("clothing", "棉质袜子五双装", "Cotton Socks (5 Pairs)", ("袜子", "socks"),
      39, 400, False, (("材质", "精梳棉", "Material", "combed cotton"), ("包装", "5双", "Pack", "5 pairs"))),
    P("clothing", "定制刺绣卫衣", "Custom Embroidered Hoodie", ("卫衣", "定制卫衣", "hoodie", "sweatshirt"),
      269, 25, False, (("定制", "可绣名字", "Personalisation", "embroidered name"), ("工期", "7天", "Made to order", "7 days"))),
    # beauty
    P("beauty", "玻尿酸保湿精华", "Hyaluronic Acid Serum", ("精华", "玻尿酸", "serum"),
      189, 70, True, (("容量", "30毫升", "Volume", "30 ml"), ("肤质", "所有肤质", "Skin type", "all"))),
    P("beauty", "氨基酸洁面乳", "Amino Acid Facial Cleanser", ("洗面奶", "洁面", "cleanser", "face wash"),
      69, 5, True, (("容量", "120克", "Size", "120 g"),)),
    P("beauty", "防晒霜SPF50", "Sunscreen SPF50", ("防晒", "防晒霜", "sunscreen", "sunblock"),
      129, 90, True, (("防晒指数", "SPF50+ PA++++", "Protection", "SPF50+ PA++++"), ("容量", "50毫升", "Volume", "50 ml"))),
    P("beauty", "哑光口红", "Matte Lipstick", ("口红", "唇膏", "lipstick"),
      159, 0, True, (("色号", "#999 正红", "Shade", "#999 classic red"),)),
    P("beauty", "补水面膜十片装", "Hydrating Sheet Masks (10)", ("面膜", "mask", "face mask"),
      99, 150, False, (("数量", "10片", "Count", "10 sheets"),)),
    P("beauty", "电动牙刷", "Electric Toothbrush", ("牙刷", "电动牙刷", "toothbrush"),
      249, 33, True, (("模式", "4种", "Modes", "4"), ("续航", "60天", "Battery", "60 days"))),
    P("beauty", "负离子吹风机", "Ionic Hair Dryer", ("吹风机", "吹风筒", "hair dryer", "blow dryer"),
      329, 18, True, (("功率", "1800W", "Power", "1800 W"),)),
    # home
    P("home", "记忆棉枕头", "Memory Foam Pillow", ("枕头", "pillow"),
      159, 55, True, (("尺寸", "60×40厘米", "Size", "60×40 cm"),)),
    P("home", "四件套床品", "Bedding Set (4 Pieces)", ("床单", "四件套", "bedding", "sheets"),
      359, 22, True, (("尺寸", "1.8米床", "Size", "king (1.8 m)"), ("材质", "长绒棉", "Material", "long-staple cotton"))),
    P("home", "不锈钢保温杯", "Stainless Steel Thermos", ("保温杯", "水杯", "thermos", "flask"),
      99, 210, True, (("容量", "500毫升", "Volume", "500 ml"), ("保温", "12小时", "Keeps warm", "12 hours"))),
    P("home", "扫地机器人", "Robot Vacuum Cleaner", ("扫地机", "扫地机器人", "robot vacuum", "roomba"),
      1899, 7, True, (("吸力", "4000Pa", "Suction", "4000 Pa"), ("续航", "150分钟", "Runtime", "150 min"))),
    P("home", "空气净化器", "Air Purifier", ("净化器", "air purifier"),
      1099, 14, True, (("适用面积", "40平方米", "Room size", "40 m²"), ("滤网", "H13", "Filter", "HEPA H13"))),
    P("home", "陶瓷餐具套装", "Ceramic Dinnerware Set", ("碗碟", "餐具", "dinnerware", "plates"),
      219, 30, True, (("件数", "16件", "Pieces", "16"),)),
    P("home", "不粘炒锅", "Non-Stick Wok", ("炒锅", "锅", "wok", "pan"),
      189, 3, True, (("尺寸", "32厘米", "Size", "32 cm"), ("适用", "燃气/电磁炉", "Works on", "gas / induction"))),
    P("home", "香薰蜡烛", "Scented Candle", ("蜡烛", "香薰", "candle"),
      79, 65, True, (("香型", "白茶", "Scent", "white tea"), ("燃烧时间", "40小时", "Burn time", "40 hours"))),
    P("home", "定制照片相框", "Custom Photo Frame", ("相框", "照片框", "photo frame"),
      129, 50, False, (("尺寸", "7寸", "Size", "5×7 in"), ("定制", "印照片", "Personalisation", "your photo printed"))),
    # food
    P("food", "云南小粒咖啡豆", "Yunnan Coffee Beans", ("咖啡豆", "咖啡", "coffee", "beans"),
      88, 75, False, (("重量", "500克", "Weight", "500 g"), ("烘焙", "中度", "Roast", "medium"))),
    P("food", "西湖龙井茶", "West Lake Longjing Tea", ("龙井", "绿茶", "longjing", "green tea"),
      268, 20, False, (("重量", "250克", "Weight", "250 g"), ("产地", "杭州", "Origin", "Hangzhou"))),
    P("food", "每日坚果礼盒", "Daily Mixed Nuts Gift Box", ("坚果", "每日坚果", "nuts", "mixed nuts"),
      129, 4, False, (("规格", "30袋", "Pack", "30 sachets"),)),
    P("food", "手工牛肉干", "Handmade Beef Jerky", ("牛肉干", "jerky"),
      68, 0, False, (("重量", "250克", "Weight", "250 g"), ("口味", "五香", "Flavour", "five-spice"))),
    P("food", "五常大米", "Wuchang Rice", ("大米", "米", "rice"),
      99, 140, False, (("重量", "5公斤", "Weight", "5 kg"),)),
    P("food", "新疆红枣", "Xinjiang Red Dates", ("红枣", "枣", "jujube", "dates"),
      59, 90, False, (("重量", "1公斤", "Weight", "1 kg"),)),
    # toys / sports / baby
    P("toys", "积木城堡", "Building Blocks Castle", ("积木", "乐高", "lego", "blocks"),
      299, 26, True, (("颗粒数", "1200", "Pieces", "1200"), ("适龄", "8岁以上", "Age", "8+"))),
    P("sports", "瑜伽垫", "Yoga Mat", ("瑜伽垫", "垫子", "yoga mat"),
      129, 95, True, (("厚度", "8毫米", "Thickness", "8 mm"), ("材质", "TPE", "Material", "TPE"))),
    P("sports", "可调节哑铃", "Adjustable Dumbbells", ("哑铃", "dumbbell", "weights"),
      599, 9, True, (("重量", "2-24公斤", "Weight", "2-24 kg"),)),
    P("baby", "婴儿纸尿裤", "Baby Diapers", ("纸尿裤", "尿不湿", "diapers", "nappies"),
      139, 180, False, (("尺码", "M码 64片", "Size", "M, 64 count"),)),
)

CUSTOMER_NAMES_ZH = (
    "张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周杰", "吴婷",
    "徐强", "孙丽", "马超", "朱琳", "胡斌", "郭晶", "何鹏", "高雪", "林峰", "罗佳",
    "郑浩", "梁悦",
)
CUSTOMER_NAMES_EN = (
    "Emily Carter", "James Wilson", "Sophie Martin", "Daniel Kim", "Olivia Brown",
    "Lucas Müller", "Hannah Lee", "Ethan Nguyen", "Grace Taylor", "Noah Schmidt",
)


class City(NamedTuple):
    zh: str
    en: str
    districts: tuple[str, ...]


CITIES: tuple[City, ...] = (
    City("上海", "Shanghai", ("浦东新区", "徐汇区", "静安区")),
    City("北京", "Beijing", ("朝阳区", "海淀区", "东城区")),
    City("广州", "Guangzhou", ("天河区", "越秀区", "海珠区")),
    City("深圳", "Shenzhen", ("南山区", "福田区", "宝安区")),
    City("杭州", "Hangzhou", ("西湖区", "滨江区", "余杭区")),
    City("成都", "Chengdu", ("锦江区", "武侯区", "高新区")),
    City("武汉", "Wuhan", ("武昌区", "洪山区", "江汉区")),
    City("南京", "Nanjing", ("鼓楼区", "玄武区", "建邺区")),
    City("西安", "Xi'an", ("雁塔区", "碑林区", "未央区")),
    City("重庆", "Chongqing", ("渝中区", "江北区", "南岸区")),
)
STREETS = ("人民路", "中山路", "建设路", "解放大道", "科技园路", "滨江大道", "文化路", "长江路")
WAREHOUSES = ("杭州", "广州", "深圳", "上海", "武汉")
HUBS = ("杭州", "上海", "广州", "武汉", "郑州", "南京", "成都")
CITY_EN = {c.zh: c.en for c in CITIES} | {"郑州": "Zhengzhou"}
CARRIER_CODES = ("SF", "ZTO", "YTO", "JD", "EMS")
CARRIER_PREFIX = {"SF": "SF", "ZTO": "7", "YTO": "YT", "JD": "JDV", "EMS": "E"}

EXCEPTIONS = (
    ("收件地址不详，派件失败，等待联系收件人", "Delivery failed: address incomplete, contacting the recipient"),
    ("包裹外包装破损，正在核实处理", "Outer packaging damaged, being checked"),
    ("受天气影响，转运暂停", "Transit paused because of bad weather"),
)


class DemoTeam(NamedTuple):
    code: str
    name_zh: str
    name_en: str
    tier: int
    categories: tuple[str, ...]


TEAMS: tuple[DemoTeam, ...] = (
    DemoTeam("frontline", "一线客服", "Frontline service", 1, ("*",)),
    DemoTeam("after_sales", "售后组", "After-sales", 2, ("refund", "quality")),
    DemoTeam("logistics", "物流组", "Logistics", 2, ("logistics",)),
    DemoTeam("quality", "品控组", "Quality", 2, ("quality",)),
    DemoTeam("payments", "支付组", "Payments", 2, ("payment", "account")),
    # the supervisor takes serious cases that no specialist team owns
    DemoTeam("cs_supervisor", "客服主管", "CS supervisors", 2, ("order", "product", "other")),
    DemoTeam("operations", "运营部", "Operations", 3, ("*",)),
)

# (login, display name, first name shown to customers, role, team code)
AGENTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("xiaomei", "李小美", "小美", "agent", "frontline"),
    ("ajie", "王杰", "阿杰", "agent", "frontline"),
    ("lucy", "Lucy Zhang", "Lucy", "agent", "frontline"),
    ("xiaoyu", "陈小雨", "小雨", "agent", "frontline"),
    ("frontline.lead", "赵敏", "赵敏", "supervisor", "frontline"),
    ("laozhou", "周建国", "老周", "agent", "after_sales"),
    ("tingting", "吴婷婷", "婷婷", "agent", "after_sales"),
    ("dawei", "刘大伟", "大伟", "agent", "logistics"),
    ("kevin", "Kevin Wu", "Kevin", "agent", "logistics"),
    ("qc.lin", "林静", "林静", "agent", "quality"),
    ("pay.sun", "孙浩", "孙浩", "agent", "payments"),
    ("supervisor", "黄丽华", "黄主管", "supervisor", "cs_supervisor"),
    ("supervisor2", "Mark Chen", "Mark", "supervisor", "cs_supervisor"),
    ("ops.he", "何伟", "何伟", "agent", "operations"),
    ("manager", "郑经理", "郑经理", "manager", "operations"),
    ("admin", "系统管理员", "管理员", "admin", "operations"),
)
