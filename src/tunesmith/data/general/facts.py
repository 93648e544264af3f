"""Real-world facts for the real-model general suite's knowledge category, written for tunesmith.

One fact a line, `question|alias;alias;...`: an answer counts when it mentions any alias (`real.score`).
Questions never contain their answer; no alias is a single letter (a stray letter would count). Which facts are held out for evaluation is decided in `real.py`.
"""

from __future__ import annotations

_CAPITALS = """
France|Paris
Germany|Berlin
Italy|Rome
Spain|Madrid
Portugal|Lisbon
Japan|Tokyo
China|Beijing;Peking
Russia|Moscow
Egypt|Cairo
Greece|Athens
Ireland|Dublin
Norway|Oslo
Sweden|Stockholm
Finland|Helsinki
Denmark|Copenhagen
Poland|Warsaw
Austria|Vienna
Hungary|Budapest
the Czech Republic|Prague
Belgium|Brussels
the Netherlands|Amsterdam
Switzerland|Bern;Berne
Canada|Ottawa
Mexico|Mexico City
Argentina|Buenos Aires
Peru|Lima
Chile|Santiago
Colombia|Bogota;Bogotá
Venezuela|Caracas
Cuba|Havana
Australia|Canberra
New Zealand|Wellington
India|New Delhi;Delhi
Pakistan|Islamabad
Bangladesh|Dhaka
Thailand|Bangkok
Vietnam|Hanoi
the Philippines|Manila
Indonesia|Jakarta
Malaysia|Kuala Lumpur
South Korea|Seoul
North Korea|Pyongyang
Iran|Tehran
Iraq|Baghdad
Saudi Arabia|Riyadh
Turkey|Ankara
Israel|Jerusalem
Lebanon|Beirut
Syria|Damascus
Jordan|Amman
Afghanistan|Kabul
Kenya|Nairobi
Ethiopia|Addis Ababa
Nigeria|Abuja
Ghana|Accra
Morocco|Rabat
Algeria|Algiers
Tunisia|Tunis
Libya|Tripoli
Sudan|Khartoum
Uganda|Kampala
Zimbabwe|Harare
Senegal|Dakar
Ukraine|Kyiv;Kiev
Romania|Bucharest
Bulgaria|Sofia
Serbia|Belgrade
Croatia|Zagreb
Iceland|Reykjavik;Reykjavík
Scotland|Edinburgh
Wales|Cardiff
England|London
the United Kingdom|London
the United States|Washington
Nepal|Kathmandu
Mongolia|Ulaanbaatar;Ulan Bator
Sri Lanka|Colombo;Sri Jayawardenepura Kotte
Cambodia|Phnom Penh
Qatar|Doha
Kuwait|Kuwait City
Estonia|Tallinn
Latvia|Riga
Lithuania|Vilnius
Slovakia|Bratislava
Slovenia|Ljubljana
Uruguay|Montevideo
Paraguay|Asuncion;Asunción
Ecuador|Quito
Bolivia|Sucre;La Paz
Jamaica|Kingston
"""

_SYMBOLS = """
gold|Au
silver|Ag
iron|Fe
copper|Cu
lead|Pb
sodium|Na
helium|He
neon|Ne
calcium|Ca
mercury|Hg
tin|Sn
zinc|Zn
chlorine|Cl
magnesium|Mg
aluminium|Al
silicon|Si
platinum|Pt
"""

_AUTHORS = """
Romeo and Juliet|Shakespeare
Hamlet|Shakespeare
Macbeth|Shakespeare
Pride and Prejudice|Austen
Emma|Austen
Oliver Twist|Dickens
A Christmas Carol|Dickens
Great Expectations|Dickens
War and Peace|Tolstoy
Anna Karenina|Tolstoy
Crime and Punishment|Dostoevsky;Dostoyevsky
Don Quixote|Cervantes
Nineteen Eighty-Four|Orwell
Animal Farm|Orwell
The Old Man and the Sea|Hemingway
Moby-Dick|Melville
The Adventures of Tom Sawyer|Twain;Clemens
Adventures of Huckleberry Finn|Twain;Clemens
Frankenstein|Shelley
Dracula|Stoker
The Great Gatsby|Fitzgerald
To Kill a Mockingbird|Harper Lee
Jane Eyre|Charlotte Bronte;Charlotte Brontë;Bronte;Brontë
Wuthering Heights|Emily Bronte;Emily Brontë;Bronte;Brontë
The Hobbit|Tolkien
The Lord of the Rings|Tolkien
Harry Potter and the Philosopher's Stone|Rowling
Alice's Adventures in Wonderland|Carroll;Dodgson
The Odyssey|Homer
The Iliad|Homer
Les Miserables|Hugo
The Divine Comedy|Dante
Faust|Goethe
The Origin of Species|Darwin
A Brief History of Time|Hawking
"""

_OTHER = """
What is the largest planet in our solar system?|Jupiter
Which planet is known as the Red Planet?|Mars
Which planet is closest to the Sun?|Mercury
Which planet has the most famous rings?|Saturn
What is the name of Earth's natural satellite?|Moon
What star is at the center of our solar system?|Sun
What is the largest ocean on Earth?|Pacific
What is the longest river in Africa?|Nile
What is the largest desert in Africa?|Sahara
What is the tallest mountain on Earth?|Everest
On which continent is Egypt?|Africa
On which continent is Brazil?|South America
On which continent is Japan?|Asia
On which continent is Germany?|Europe
On which continent is Kenya?|Africa
On which continent is Canada?|North America
Which continent is covered by the largest ice sheet?|Antarctica
What is the largest country in the world by area?|Russia
What is the most populous country in the world?|India;China
What language is mainly spoken in Brazil?|Portuguese
What language is mainly spoken in Mexico?|Spanish
What language is mainly spoken in Germany?|German
What language is mainly spoken in Japan?|Japanese
What language is mainly spoken in Egypt?|Arabic
What language is mainly spoken in Italy?|Italian
What language is mainly spoken in Russia?|Russian
What language is mainly spoken in Argentina?|Spanish
What language is mainly spoken in the Netherlands?|Dutch
What is the currency of Japan?|yen
What is the currency of the United Kingdom?|pound;sterling
What is the currency of the United States?|dollar
What is the currency of India?|rupee
What is the currency of Russia?|ruble;rouble
What is the currency of China?|yuan;renminbi
At what temperature in degrees Celsius does water boil at sea level?|100
At what temperature in degrees Celsius does water freeze?|0;zero
How many legs does a spider have?|8;eight
How many legs does an insect have?|6;six
How many days are there in a leap year?|366
How many days are there in a week?|7;seven
How many hours are there in a day?|24;twenty-four
How many minutes are there in an hour?|60;sixty
How many seconds are there in a minute?|60;sixty
How many months are there in a year?|12;twelve
How many centimeters are there in a meter?|100;hundred
How many grams are there in a kilogram?|1000;1,000;thousand
How many meters are there in a kilometer?|1000;1,000;thousand
How many sides does a triangle have?|3;three
How many sides does a hexagon have?|6;six
How many sides does an octagon have?|8;eight
How many continents are there on Earth?|7;seven
How many planets are in our solar system?|8;eight
What gas do plants absorb from the air for photosynthesis?|carbon dioxide;CO2
What gas do humans need to breathe in to live?|oxygen
What is the chemical formula of water?|H2O
What is the hardest natural substance?|diamond
What is the boiling point of water in degrees Fahrenheit?|212
What force keeps us on the ground?|gravity
What organ pumps blood through the human body?|heart
What is the largest organ of the human body?|skin
How many bones are in the adult human body?|206
What is the largest mammal on Earth?|blue whale;whale
What is the fastest land animal?|cheetah
What animal is known as the king of the jungle?|lion
Which bird is a symbol of peace?|dove
What do bees make?|honey
What is the primary ingredient of guacamole?|avocado
Who was the first president of the United States?|George Washington;Washington
Who painted the Mona Lisa?|Leonardo;da Vinci
Who painted The Starry Night?|Van Gogh
Who developed the theory of relativity?|Einstein
Who discovered penicillin?|Fleming
Who proposed the laws of motion and universal gravitation?|Newton
Who invented the telephone?|Bell
Who was the first person to walk on the Moon?|Armstrong
Who composed the Fifth Symphony that begins with four famous notes?|Beethoven
Who wrote the theory of evolution by natural selection?|Darwin
In which city is the Eiffel Tower?|Paris
In which city is the Colosseum?|Rome
In which country are the pyramids of Giza?|Egypt
In which country is the Great Wall?|China
In which country is the Taj Mahal?|India
In which city is the Statue of Liberty?|New York
In which country is Machu Picchu?|Peru
In which country did the Olympic Games begin in ancient times?|Greece
What is the freezing point of water in degrees Fahrenheit?|32
What is the square root of 81?|9;nine
How many players are on a soccer team on the field?|11;eleven
What is the opposite of hot?|cold
What color do you get by mixing blue and yellow?|green
What color do you get by mixing red and white?|pink
What is the color of a clear daytime sky?|blue
What season comes after winter?|spring
What season comes after summer?|autumn;fall
"""


def facts() -> list[tuple[str, tuple[str, ...]]]:
    """Every fact as `(question, aliases)`, in a fixed order."""
    rows: list[tuple[str, tuple[str, ...]]] = []
    for block, template in (
        (_CAPITALS, "What is the capital of {}?"),
        (_SYMBOLS, "What is the chemical symbol of {}?"),
        (_AUTHORS, "Who wrote {}?"),
        (_OTHER, "{}"),
    ):
        for line in block.strip().splitlines():
            subject, aliases = line.split("|")
            rows.append((template.format(subject), tuple(aliases.split(";"))))
    return rows
